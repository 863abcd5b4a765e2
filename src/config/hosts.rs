//! The hosts open mode serves (API.md "Open mode"): an [`Authority`] is one `host[:port]` as a
//! `Host` header or an `OVERSEER_ALLOWED_HOSTS` entry writes it, and a [`HostAllowList`] is
//! loopback, the listen address and those entries. They live with the configuration because the
//! configuration checks its entries with the same parser the guard (`http::open_mode`) uses, so
//! an entry the guard could never match stops start-up instead.

use std::net::IpAddr;

/// One `host[:port]` as a `Host` header or an allow-list entry writes it, host lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub host: String,
    pub port: Option<u16>,
}

impl Authority {
    /// Parses `name`, `name:port`, `1.2.3.4:port`, `[::1]:port`; `None` when it is none of these.
    pub fn parse(text: &str) -> Option<Authority> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?.parse().ok()?),
            };
            (host, port)
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port.parse().ok()?)),
                None => (text, None),
            }
        };
        // A trailing dot names the same host (`localhost.`); a browser may send it.
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_'));
        valid.then_some(Authority { host, port })
    }

    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// True when `self` (a request's `Host`) is named by `entry` (an allow-list entry): the
    /// same host, and the same port when the entry names one.
    pub fn allowed_by(&self, entry: &Authority) -> bool {
        self.host == entry.host && entry.port.is_none_or(|port| self.port == Some(port))
    }
}

/// The hosts served in open mode besides loopback: the listen address and
/// `OVERSEER_ALLOWED_HOSTS`.
#[derive(Debug, Clone, Default)]
pub struct HostAllowList {
    entries: Vec<Authority>,
}

impl HostAllowList {
    pub fn new(listen_addr: &str, allowed_hosts: &[String]) -> HostAllowList {
        let listen = Authority::parse(listen_addr).map(|a| Authority {
            host: a.host,
            port: None,
        });
        HostAllowList {
            entries: listen
                .into_iter()
                .chain(allowed_hosts.iter().filter_map(|h| Authority::parse(h)))
                .collect(),
        }
    }

    pub fn allows(&self, host: &Authority) -> bool {
        host.is_loopback() || self.entries.iter().any(|entry| host.allowed_by(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Authority {
        Authority::parse(text).expect("a host")
    }

    #[test]
    fn loopback_names_and_addresses_are_allowed_on_any_port() {
        let allow = HostAllowList::new("0.0.0.0:8080", &[]);
        for h in [
            "localhost",
            "localhost:1",
            "LOCALHOST.:8080",
            "127.0.0.1",
            "127.0.0.1:9999",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(allow.allows(&host(h)), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:8080",
            "localhost.evil.example",
        ] {
            assert!(!allow.allows(&host(h)), "{h}");
        }
    }

    #[test]
    fn listen_address_and_allowed_hosts_are_allowed() {
        let allow = HostAllowList::new(
            "10.0.0.5:8080",
            &["overseer.internal".into(), "ops.example:443".into()],
        );
        assert!(allow.allows(&host("10.0.0.5:8080")));
        assert!(allow.allows(&host("Overseer.Internal:8080")));
        assert!(allow.allows(&host("ops.example:443")));
        assert!(!allow.allows(&host("ops.example:8443")));
        assert!(!allow.allows(&host("10.0.0.6:8080")));
    }

    #[test]
    fn malformed_hosts_do_not_parse() {
        for h in ["", "a b", "host:port", "[::1", "evil/..", "h@evil"] {
            assert!(Authority::parse(h).is_none(), "{h:?}");
        }
    }
}
