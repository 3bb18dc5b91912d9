//! How buckets and keys map onto Redis keys, and how URLs appear in
//! messages. Pure functions: the scheme is a contract with operators who
//! read Redis directly.

/// The Redis key holding `key` of `bucket`: `{bucket}:{key}`.
pub fn redis_key(bucket: &str, key: &str) -> String {
    format!("{bucket}:{key}")
}

/// The `SCAN MATCH` pattern for every key of `bucket`, with the bucket's
/// own glob characters escaped so bucket `a*` does not list bucket `ab`.
pub fn bucket_pattern(bucket: &str) -> String {
    let mut pattern = String::with_capacity(bucket.len() + 2);
    for c in bucket.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(":*");
    pattern
}

/// `url` as it may appear in logs and error messages: a password in the
/// user info (`redis://user:secret@host`) or in a `pass`/`password` query
/// parameter (`redis+unix:///sock?pass=secret`) becomes `***`.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = redact_user_info(head);
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if matches!(name, "pass" | "password") => format!("{name}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

fn redact_user_info(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user_info = match user_info.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => user_info.to_owned(),
    };
    format!("{scheme}://{user_info}@{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bucket_colon_key() {
        assert_eq!(redis_key("default", "hits"), "default:hits");
        assert_eq!(redis_key("a:b", "c"), "a:b:c");
    }

    #[test]
    fn bucket_glob_characters_are_escaped_in_the_scan_pattern() {
        assert_eq!(bucket_pattern("default"), "default:*");
        assert_eq!(bucket_pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\:*");
    }

    #[test]
    fn passwords_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_url("redis://user:s3cret@db.example:6379/2"),
            "redis://user:***@db.example:6379/2"
        );
        assert_eq!(redact_url("rediss://:s3cret@db/"), "rediss://:***@db/");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
