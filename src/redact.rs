//! Secrets out of text before it is printed or logged: one implementation for broker URLs in
//! errors (`broker::redact`), log lines and metrics (`ops::redact::url`), and what `run` quotes
//! of a `--sink` or `--input` it refuses. A log line is copied to places (terminals, log
//! collectors) that must never hold a broker's password, and a mistyped URL is the likeliest
//! one to be quoted, so this works on any text, not only URLs that parse.
//!
//! ```
//! use hubroute::redact::url;
//! assert_eq!(url("mqtt://user:s3cret@broker:8883/t?password=x&password_file=/run/pw"),
//!            "mqtt://user:***@broker:8883/t?password=***&password_file=/run/pw");
//! assert_eq!(url("alerts=mqtt:/user:s3cret@broker/t"), "alerts=mqtt:/user:***@broker/t");
//! assert_eq!(url("file:out/a.jsonl"), "file:out/a.jsonl");
//! ```

/// `text` (a broker URL as typed, valid or not) with any password in its user information and
/// the value of any query parameter that looks like an inline secret (`password`, `token`,
/// `secret`, but not `…_file`/`…_env`) replaced by `***`: for error messages and logs about
/// URLs that did not parse.
pub fn url(text: &str) -> String {
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, text),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    let mut out = String::with_capacity(text.len());
    if let Some(s) = scheme {
        out.push_str(s);
        out.push_str("://");
    }
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    if let Some(p) = path {
        out.push('/');
        out.push_str(p);
    }
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if looks_secret(k) => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    without_user_password(&out)
}

fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let named = [
        "pass",
        "token",
        "secret",
        "seed",
        "jwt",
        "nkey",
        "sig",
        "sas",
        "accesskey",
    ]
    .iter()
    .any(|s| k.contains(s));
    named && !k.ends_with("_file") && !k.ends_with("_env")
}

/// `text` with any remaining `user:password@` masked as `user:***@`, also where the rest is not
/// a URL that [`url`] recognises (a mistyped `mqtt:/user:pw@host`).
fn without_user_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let (before, after) = rest.split_at(at);
        // The user information starts after the last separator before the `@`.
        let start = before.rfind(['/', '=', ' ', ',']).map_or(0, |i| i + 1);
        match before[start..].find(':') {
            Some(colon) if &before[start + colon + 1..] != "***" => {
                out.push_str(&before[..start + colon + 1]);
                out.push_str("***");
            }
            _ => out.push_str(before),
        }
        out.push('@');
        rest = &after[1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn passwords_and_secret_parameters_are_hidden() {
        assert_eq!(url("nats://alice:pw@h:4222/s"), "nats://alice:***@h:4222/s");
        assert_eq!(url("nats://alice@h:4222/s"), "nats://alice@h:4222/s");
        assert_eq!(
            url("jetstream://h/S?consumer=c&Token=abc&password_file=/run/pw"),
            "jetstream://h/S?consumer=c&Token=***&password_file=/run/pw"
        );
        // A password containing '@' or ':' still disappears whole.
        assert_eq!(url("mqtt://u:p@:ss@h:1/t"), "mqtt://u:***@h:1/t");
        assert_eq!(url("stdout:"), "stdout:");
        // Not a URL that parses, still no password.
        assert_eq!(url("x=mqtt:/u:pw@h/t"), "x=mqtt:/u:***@h/t");
        assert_eq!(url("u:pw@h"), "u:***@h");
    }
}
