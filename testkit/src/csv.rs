//! Generated CSV inputs of any size (`customer_id,ad_group_id`), for the ingest tests and
//! benches: streamed in chunks so a million-row input never sits in memory whole.

/// About how large one chunk of [`csv_chunks`] is: the size of a typical upload read.
const CHUNK_BYTES: usize = 64 * 1024;

/// The first customer id and ad group id of a generated CSV (ten and seven digits, as Google's).
const FIRST_CUSTOMER_ID: u64 = 1_000_000_000;
const FIRST_AD_GROUP_ID: u64 = 1_000_000;

/// Generates a CSV of `items` rows spread round-robin over `customers` customer ids, in
/// chunks of about 64 KiB, without holding the file.
pub fn csv_chunks(items: u64, customers: u64) -> impl Iterator<Item = bytes::Bytes> {
    let customers = customers.max(1);
    let mut next = 0u64;
    let mut header_sent = false;
    std::iter::from_fn(move || {
        let mut chunk = String::with_capacity(CHUNK_BYTES + 64);
        if !header_sent {
            chunk.push_str("customer_id,ad_group_id\n");
            header_sent = true;
        }
        while next < items && chunk.len() < CHUNK_BYTES {
            let customer = FIRST_CUSTOMER_ID + next % customers;
            chunk.push_str(&format!("{customer},{}\n", FIRST_AD_GROUP_ID + next));
            next += 1;
        }
        (!chunk.is_empty()).then(|| bytes::Bytes::from(chunk))
    })
}

/// The same CSV as [`csv_chunks`], whole.
pub fn csv_items(items: u64, customers: u64) -> String {
    csv_chunks(items, customers)
        .map(|chunk| String::from_utf8_lossy(&chunk).into_owned())
        .collect()
}
