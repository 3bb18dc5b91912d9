//! NATS subject syntax, checked here because async-nats sends whatever it
//! is given and the server's complaint would arrive later, detached from
//! the link or call that caused it.

/// A subject that NATS would refuse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{subject}` is not a valid NATS subject: {problem}")]
pub struct SubjectError {
    /// The subject as given.
    pub subject: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// Checks a subject to subscribe to: dot-separated tokens, where `*` may
/// stand for one token and a final `>` for the rest.
pub fn check_subscription(subject: &str) -> Result<(), SubjectError> {
    check(subject, true)
}

/// Checks a subject to publish on: like a subscription, without wildcards.
pub fn check_publish(subject: &str) -> Result<(), SubjectError> {
    check(subject, false)
}

fn check(subject: &str, wildcards: bool) -> Result<(), SubjectError> {
    let refuse = |problem| {
        Err(SubjectError {
            subject: subject.to_owned(),
            problem,
        })
    };
    if subject.is_empty() {
        return refuse("it is empty");
    }
    if subject.chars().any(char::is_whitespace) {
        return refuse("it contains whitespace");
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    let last = tokens.len() - 1;
    for (i, token) in tokens.iter().enumerate() {
        match *token {
            "" => return refuse("it has an empty token (a leading, trailing or double `.`)"),
            "*" | ">" if !wildcards => {
                return refuse("wildcards (`*`, `>`) are for subscribing, not publishing");
            }
            ">" if i != last => return refuse("`>` may only be the last token"),
            "*" | ">" => {}
            t if t.contains(['*', '>']) => {
                return refuse("`*` and `>` must be whole tokens");
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_wildcard_subjects_subscribe() {
        for subject in [
            "orders",
            "orders.new",
            "orders.*.eu",
            "orders.>",
            ">",
            "_INBOX.abc",
        ] {
            assert_eq!(check_subscription(subject), Ok(()), "{subject}");
        }
    }

    #[test]
    fn malformed_subjects_are_refused_with_a_reason() {
        for subject in ["", "a..b", ".a", "a.", "a b", "a.>.b", "a*.b", "a.b>"] {
            let err = check_subscription(subject).err();
            assert!(err.is_some(), "{subject:?} was accepted");
        }
    }

    #[test]
    fn publishing_needs_a_literal_subject() {
        assert_eq!(check_publish("orders.new"), Ok(()));
        assert!(check_publish("orders.*").is_err());
        assert!(check_publish("orders.>").is_err());
    }
}
