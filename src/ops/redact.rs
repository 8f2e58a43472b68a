//! Secrets out of text before it is logged: a password in a URL's user part and the values of
//! query parameters that name secrets. Logging goes through here for every URL and
//! configuration value, because a log line is copied to places (terminals, log collectors)
//! that must never hold a broker's password.
//!
//! ```
//! use hubroute::ops::redact::url;
//! assert_eq!(url("mqtt://user:s3cret@broker:8883/t?password=x"),
//!            "mqtt://user:***@broker:8883/t?password=***");
//! assert_eq!(url("file:out/a.jsonl"), "file:out/a.jsonl");
//! ```

/// Query parameters whose value is a secret itself (not the name of a file or variable
/// holding one, which is safe to show).
const SECRET_PARAMS: &[&str] = &[
    "password",
    "pass",
    "token",
    "secret",
    "key",
    "sas",
    "sig",
    "signature",
    "sharedaccesskey",
    "nkey",
    "jwt",
];

/// `text` with any URL password and secret-valued query parameters replaced by `***`.
pub fn url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (base, query) = match text.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (text, None),
    };
    match base.split_once("://") {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
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
            out.push_str(path);
        }
        None => out.push_str(base),
    }
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                    format!("{k}=***")
                }
                _ => p.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
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
    }
}
