//! Keeping secrets out of every message: passwords in connection URLs (`scheme://user:pw@host`)
//! and in key/value connection strings or query parameters (`password=pw`).
//!
//! Every error text and progress line of the API server and its backup program passes through
//! [`redact`], including text we did not write ourselves (pg_dump's stderr, storage and driver
//! errors), and so does what the operator copies from a Job's termination message into status.

const MASK: &str = "***";

/// `text` with every password it contains replaced by `***`.
pub fn redact(text: &str) -> String {
    redact_password_params(&redact_userinfo(text))
}

/// Characters that end a URL embedded in free text.
fn ends_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ',' | ';' | ')')
}

/// Masks the password in the userinfo of every `scheme://user:password@host` in `text`.
///
/// The userinfo ends at the URL's last `@`, not at its first `/`: a password may hold `/`, `?`,
/// `#`, `:` and `@` (unencoded, as users paste them). When an `@` further on belongs to the path
/// or query instead, more than the password is masked: too much is safe, too little is not.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (before, after_scheme) = rest.split_at(pos + 3);
        out.push_str(before);
        let url_len = after_scheme.find(ends_url).unwrap_or(after_scheme.len());
        let url = &after_scheme[..url_len];
        let masked = url.rfind('@').and_then(|at| {
            let userinfo = &url[..at];
            let colon = userinfo.find(':')?;
            // A user name holds none of these: the ':' is a port's, the '@' the path's.
            let user = &userinfo[..colon];
            (!user.contains(['/', '?', '#'])).then_some((colon, at))
        });
        match masked {
            Some((colon, at)) => {
                out.push_str(&url[..=colon]);
                out.push_str(MASK);
                out.push_str(&url[at..]);
            }
            None => out.push_str(url),
        }
        rest = &after_scheme[url_len..];
    }
    out.push_str(rest);
    out
}

/// Masks the value of every `password=value` (libpq key/value strings, URL query parameters,
/// environment-style `PGPASSWORD=value`), case-insensitively.
fn redact_password_params(text: &str) -> String {
    const KEY: &str = "password=";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search_from = 0;
    while let Some(found) = lower[search_from..].find(KEY) {
        let value_start = search_from + found + KEY.len();
        let value_len = text[value_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | ';' | ',' | '"' | '\'' | ')'))
            .unwrap_or(text.len() - value_start);
        out.push_str(&text[copied..value_start]);
        if value_len > 0 {
            out.push_str(MASK);
        }
        copied = value_start + value_len;
        search_from = copied;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_url_passwords() {
        assert_eq!(
            redact("postgres://fp:s3cr3t@db.internal:5432/fp"),
            "postgres://fp:***@db.internal:5432/fp"
        );
    }

    #[test]
    fn keeps_urls_without_passwords_unchanged() {
        for text in [
            "postgres://postgres@127.0.0.1:55433/postgres",
            "s3://fp-backups/prod/",
            "file:///var/backups",
            "http://127.0.0.1:9000",
            "no url here",
            "",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn masks_passwords_containing_at_signs_and_colons() {
        assert_eq!(
            redact("postgres://fp:p@ss:w@rd@db:5432/fp"),
            "postgres://fp:***@db:5432/fp"
        );
    }

    #[test]
    fn masks_every_url_inside_free_text() {
        let text =
            "could not connect to \"postgres://a:one@h1/db\" nor postgres://b:two@h2/db, giving up";
        let redacted = redact(text);
        assert!(
            !redacted.contains("one@") && !redacted.contains("two@"),
            "{redacted}"
        );
        assert_eq!(
            redacted,
            "could not connect to \"postgres://a:***@h1/db\" nor postgres://b:***@h2/db, giving up"
        );
    }

    #[test]
    fn masks_key_value_and_query_passwords() {
        assert_eq!(
            redact("host=db user=fp password=hunter2 dbname=fp"),
            "host=db user=fp password=*** dbname=fp"
        );
        assert_eq!(
            redact("postgres://db/fp?user=fp&password=hunter2&sslmode=require"),
            "postgres://db/fp?user=fp&password=***&sslmode=require"
        );
        assert_eq!(redact("PGPASSWORD=hunter2"), "PGPASSWORD=***");
        assert_eq!(redact("Password=x;Password=y"), "Password=***;Password=***");
    }

    #[test]
    fn masks_passwords_holding_url_delimiters() {
        // Each of these printed the password whole before the userinfo ended at the last '@'.
        for (text, want) in [
            ("postgres://fp:pa/ss@db/fp", "postgres://fp:***@db/fp"),
            (
                "postgres://fp:p?w#d@db:5432/fp",
                "postgres://fp:***@db:5432/fp",
            ),
            (
                "postgresql://fp:a/b@c@db/fp?sslmode=require",
                "postgresql://fp:***@db/fp?sslmode=require",
            ),
        ] {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn an_at_sign_past_the_host_masks_more_never_less() {
        let redacted = redact("postgres://fp:secret@db/fp?application_name=a@b");
        assert!(!redacted.contains("secret"), "{redacted}");
        // No userinfo and no colon before the '@': left alone.
        assert_eq!(
            redact("http://minio.local/bucket/a@b"),
            "http://minio.local/bucket/a@b"
        );
        // A port and an '@' in the path read like `user:pa/ss@host`: masked, as a password with
        // a '/' must be (the ambiguity is resolved towards hiding).
        assert_eq!(
            redact("http://127.0.0.1:9000/bucket/a@b"),
            "http://127.0.0.1:***@b"
        );
    }

    #[test]
    fn handles_multibyte_text_around_secrets() {
        assert_eq!(
            redact("café postgres://ü:pä@h/d naïve"),
            "café postgres://ü:***@h/d naïve"
        );
    }

    #[test]
    fn empty_password_values_stay_empty() {
        assert_eq!(redact("password= user=x"), "password= user=x");
        assert_eq!(redact("postgres://u:@h/d"), "postgres://u:***@h/d");
    }
}
