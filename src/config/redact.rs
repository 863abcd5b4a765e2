//! Connection strings shown without their secrets, in `GET /api/config` and the start-up log.
//!
//! Hiding a password by searching the string for `user:password@` misses every other way to
//! write one: `?password=` in a PostgreSQL URL, the key=value DSN (`host=… password=…`), a
//! password that contains `@`. So each string is parsed by the library that will use it
//! (`tokio_postgres::Config`, `redis::ConnectionInfo`, `url::Url` for plain URLs), and the view is
//! *rebuilt* from the parsed parts, the password left out. What the parser does not understand is
//! not shown at all: a string that does not parse is replaced whole, since it may be all secret.

use std::fmt::Write;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tokio_postgres::config::{Host, SslMode};

/// What a string that cannot be parsed is shown as.
pub const UNPARSEABLE: &str = "[unparseable, redacted]";

/// `DATABASE_URL` in the URL form with every `@` but the last of the authority percent-encoded,
/// so a password containing `@` parses as a password. (tokio-postgres, like libpq, ends the user
/// info at the *first* `@`; browsers and the URL standard end it at the last.) Other forms are
/// returned as they are.
pub fn normalize_postgres(dsn: &str) -> String {
    let Some((scheme, rest)) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| dsn.strip_prefix(scheme).map(|rest| (*scheme, rest)))
    else {
        return dsn.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) if userinfo.contains('@') => {
            format!("{scheme}{}@{hosts}{tail}", userinfo.replace('@', "%40"))
        }
        _ => dsn.to_string(),
    }
}

/// What must be escaped in a user name, host, database name or parameter of a rebuilt URL: the
/// characters that delimit URL parts (a Unix socket directory as host becomes `%2Frun…`).
const COMPONENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'+')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// A PostgreSQL connection string (URL or key=value), rebuilt as a URL without the password.
pub fn postgres(dsn: &str) -> String {
    // A file path holds no secret.
    if dsn.starts_with("sqlite:") {
        return dsn.to_string();
    }
    let Ok(config) = normalize_postgres(dsn).parse::<tokio_postgres::Config>() else {
        return UNPARSEABLE.into();
    };
    let mut shown = String::from("postgres://");
    if let Some(user) = config.get_user() {
        let _ = write!(shown, "{}@", encode(user));
    }
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]"),
                Host::Tcp(name) => encode(name),
                Host::Unix(path) => encode(&path.to_string_lossy()),
            };
            // One port applies to every host; otherwise each host has its own.
            match ports.get(i).or(ports.first().filter(|_| ports.len() == 1)) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    shown.push_str(&hosts.join(","));
    if let Some(dbname) = config.get_dbname() {
        let _ = write!(shown, "/{}", encode(dbname));
    }
    let mut params = Vec::new();
    if let Some(name) = config.get_application_name() {
        params.push(format!("application_name={}", encode(name)));
    }
    if let Some(options) = config.get_options() {
        params.push(format!("options={}", encode(options)));
    }
    if let Some(timeout) = config.get_connect_timeout() {
        params.push(format!("connect_timeout={}", timeout.as_secs()));
    }
    let sslmode = match config.get_ssl_mode() {
        SslMode::Disable => Some("disable"),
        SslMode::Require => Some("require"),
        _ => None,
    };
    if let Some(mode) = sslmode {
        params.push(format!("sslmode={mode}"));
    }
    if !params.is_empty() {
        let _ = write!(shown, "?{}", params.join("&"));
    }
    shown
}

/// A Redis URL, rebuilt from the parsed connection info without the password.
pub fn redis(url: &str) -> String {
    use redis::{ConnectionAddr, IntoConnectionInfo, ProtocolVersion};
    let Ok(info) = url.into_connection_info() else {
        return UNPARSEABLE.into();
    };
    let settings = info.redis_settings();
    let user = settings
        .username()
        .map(|u| format!("{}@", encode(u)))
        .unwrap_or_default();
    let db = settings.db();
    let mut params = Vec::new();
    if settings.protocol() == ProtocolVersion::RESP3 {
        params.push("protocol=resp3".to_string());
    }
    let host = |name: &str| {
        if name.contains(':') {
            format!("[{name}]")
        } else {
            name.to_string()
        }
    };
    let mut shown = match info.addr() {
        ConnectionAddr::Tcp(name, port) => format!("redis://{user}{}:{port}/{db}", host(name)),
        ConnectionAddr::TcpTls {
            host: name,
            port,
            insecure,
            ..
        } => {
            let fragment = if *insecure { "#insecure" } else { "" };
            format!("rediss://{user}{}:{port}/{db}{fragment}", host(name))
        }
        ConnectionAddr::Unix(path) => {
            params.insert(0, format!("db={db}"));
            format!("redis+unix://{}", path.to_string_lossy())
        }
        _ => return UNPARSEABLE.into(),
    };
    if !params.is_empty() {
        let at = shown.find('#').unwrap_or(shown.len());
        shown.insert_str(at, &format!("?{}", params.join("&")));
    }
    shown
}

/// Query parameters that carry secrets in URLs of any kind.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "token", "key", "auth", "credential"]
        .iter()
        .any(|word| name.contains(word))
}

/// Any other URL (an endpoint): without the user info's password and without query parameters
/// that name a secret.
pub fn url(text: &str) -> String {
    let Ok(mut url) = ::url::Url::parse(text) else {
        return UNPARSEABLE.into();
    };
    if url.password().is_some() {
        let _ = url.set_password(None);
    }
    if url.query().is_some() {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(name, _)| !is_secret_param(name))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "Hunter2x";

    #[test]
    fn postgres_passwords_are_left_out_in_every_form() {
        let forms = [
            format!("postgres://app:{SECRET}@db.internal:5433/jobs"),
            format!("postgresql://app@db.internal:5433/jobs?password={SECRET}&sslmode=require"),
            format!("host=db.internal port=5433 user=app password={SECRET} dbname=jobs"),
            format!("host=db.internal port=5433 user=app password='{SECRET} x' dbname=jobs"),
            format!("postgres://app:{SECRET}@x@db.internal:5433/jobs"),
            format!("postgres://app:{SECRET}%40x@db.internal:5433/jobs"),
        ];
        for form in forms {
            let shown = postgres(&form);
            assert!(
                !shown.contains(SECRET) && !shown.contains("@x"),
                "{form} → {shown}"
            );
            assert!(
                shown.starts_with("postgres://app@db.internal:5433/jobs"),
                "{form} → {shown}"
            );
        }
    }

    #[test]
    fn a_password_with_at_signs_parses_as_a_password() {
        let dsn = normalize_postgres("postgres://app:p@ss@word@db:5432/x");
        let config: tokio_postgres::Config = dsn.parse().expect("parses");
        assert_eq!(config.get_password(), Some(&b"p@ss@word"[..]));
        assert_eq!(config.get_hosts(), &[Host::Tcp("db".into())]);
    }

    #[test]
    fn unparseable_strings_are_not_shown() {
        assert_eq!(
            postgres(&format!("host=x password={SECRET} nonsense")),
            UNPARSEABLE
        );
        assert_eq!(redis(&format!("nope://{SECRET}")), UNPARSEABLE);
    }

    #[test]
    fn redis_passwords_are_left_out() {
        for form in [
            format!("redis://:{SECRET}@cache:6380/2"),
            format!("redis://worker:{SECRET}@cache:6380/2"),
            format!("redis://worker:{SECRET}@x@cache:6380/2"),
        ] {
            let shown = redis(&form);
            assert!(
                !shown.contains(SECRET) && !shown.contains("@x"),
                "{form} → {shown}"
            );
            assert!(shown.ends_with("cache:6380/2"), "{form} → {shown}");
        }
        let shown = redis(&format!("redis+unix:///run/redis.sock?db=1&pass={SECRET}"));
        assert_eq!(shown, "redis+unix:///run/redis.sock?db=1");
    }

    #[test]
    fn other_urls_lose_passwords_and_secret_parameters() {
        let shown = url(&format!(
            "https://u:{SECRET}@ads.example/v1?api_key={SECRET}&region=eu"
        ));
        assert_eq!(shown, "https://u@ads.example/v1?region=eu");
    }
}
