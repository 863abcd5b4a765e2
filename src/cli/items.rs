//! `overseer jobs items ID`: a job's items to stdout or a file, as the CSV export (the file a
//! user fixes and submits again) or as JSON lines (one item per line, for `jq` and scripts).
//!
//! Both stream: the CSV is written as the server sends it, the JSON lines a page at a time, so
//! a job of a million items never sits in memory. A download cut short is an error, never a
//! file that looks complete.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use super::api::{Api, CliError};

/// Items per page when writing JSON lines.
const PAGE: &str = "1000";

/// How the items are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ItemsFormat {
    Csv,
    Json,
}

/// Which items, how, and where to.
pub struct ItemsRequest<'a> {
    pub id: i64,
    pub status: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub format: ItemsFormat,
    pub output: Option<&'a Path>,
}

/// Writes the items; with `--output`, says on stderr where they went.
pub async fn write(api: &Api, request: &ItemsRequest<'_>) -> Result<(), CliError> {
    let mut out = Output::open(request.output)?;
    match request.format {
        ItemsFormat::Csv => write_csv(api, request, &mut out).await?,
        ItemsFormat::Json => write_json_lines(api, request, &mut out).await?,
    }
    out.finish()?;
    if let Some(path) = request.output {
        eprintln!(
            "wrote the items of job {} to {}",
            request.id,
            path.display()
        );
    }
    Ok(())
}

fn filters<'a>(request: &'a ItemsRequest<'_>) -> Vec<(&'static str, &'a str)> {
    let mut query = Vec::new();
    if let Some(status) = request.status {
        query.push(("status", status));
    }
    if let Some(customer_id) = request.customer_id {
        query.push(("customer_id", customer_id));
    }
    query
}

async fn write_csv(
    api: &Api,
    request: &ItemsRequest<'_>,
    out: &mut Output,
) -> Result<(), CliError> {
    let path = format!("/api/jobs/{}/items", request.id);
    let mut query = filters(request);
    query.push(("format", "csv"));
    let mut response = api
        .answer(api.request(reqwest::Method::GET, &path).query(&query))
        .await?;
    let url = response.url().to_string();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => out.write(&chunk)?,
            Ok(None) => return Ok(()),
            Err(error) => {
                return Err(CliError::Unreachable {
                    url,
                    reason: format!(
                        "the download was cut short ({error}); the output is incomplete"
                    ),
                });
            }
        }
    }
}

async fn write_json_lines(
    api: &Api,
    request: &ItemsRequest<'_>,
    out: &mut Output,
) -> Result<(), CliError> {
    let path = format!("/api/jobs/{}/items", request.id);
    let mut after_id = String::from("0");
    loop {
        let mut query = filters(request);
        query.push(("limit", PAGE));
        query.push(("after_id", &after_id));
        let page = api
            .send(api.request(reqwest::Method::GET, &path).query(&query))
            .await?;
        let Some(items) = page["items"].as_array() else {
            return Err(CliError::BadAnswer {
                url: format!("{}{path}", api.base()),
                reason: format!("no items list in {page}"),
            });
        };
        for item in items {
            out.write(format!("{item}\n").as_bytes())?;
        }
        match page["next_after_id"].as_i64() {
            Some(next) => after_id = next.to_string(),
            None => return Ok(()),
        }
    }
}

/// Stdout or a file, with the closed-pipe case named.
struct Output {
    sink: Box<dyn Write>,
    path: Option<PathBuf>,
}

impl Output {
    fn open(path: Option<&Path>) -> Result<Output, CliError> {
        let sink: Box<dyn Write> = match path {
            Some(path) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|e| {
                    CliError::Input(format!("cannot create {}: {e}", path.display()))
                })?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        };
        Ok(Output {
            sink,
            path: path.map(Path::to_path_buf),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), CliError> {
        self.sink.write_all(bytes).map_err(|e| self.failed(e))
    }

    fn finish(mut self) -> Result<(), CliError> {
        self.sink.flush().map_err(|e| self.failed(e))
    }

    fn failed(&self, error: std::io::Error) -> CliError {
        match (&self.path, error.kind()) {
            (None, std::io::ErrorKind::BrokenPipe) => CliError::OutputClosed,
            (Some(path), _) => CliError::Input(format!("cannot write {}: {error}", path.display())),
            (None, _) => CliError::Input(format!("cannot write the output: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_carry_only_what_was_given() {
        let request = ItemsRequest {
            id: 1,
            status: Some("failed"),
            customer_id: None,
            format: ItemsFormat::Json,
            output: None,
        };
        assert_eq!(filters(&request), [("status", "failed")]);
    }
}
