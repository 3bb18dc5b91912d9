//! A path-tracking reader over a parsed YAML or JSON document.
//!
//! serde's derive stops at the first error and forgets where it was, so the
//! manifest is first parsed into a plain [`Value`] and then walked with
//! [`Node`]s that know their path. Each accessor records a [`Problem`] when
//! the value has the wrong shape and returns `None`, so reading goes on and
//! every problem in the document is reported at once.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::Problem;

/// A value in the document and the path that leads to it.
#[derive(Clone, Debug)]
pub(crate) struct Node<'a> {
    value: &'a Value,
    path: String,
}

/// The fields of a map whose keys were checked against the allowed set.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Node<'a> {
    /// The whole document.
    pub(crate) fn root(value: &'a Value) -> Self {
        Self {
            value,
            path: String::new(),
        }
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn value(&self) -> &'a Value {
        self.value
    }

    pub(crate) fn problem(&self, problems: &mut Vec<Problem>, message: impl Into<String>) {
        problems.push(Problem::new(self.path.clone(), message));
    }

    /// A map with only `allowed` keys; any other key is reported at its own path.
    pub(crate) fn fields(
        &self,
        allowed: &[&str],
        problems: &mut Vec<Problem>,
    ) -> Option<Fields<'a>> {
        let Some(map) = self.value.as_object() else {
            self.problem(
                problems,
                format!("expected a map, found {}", describe(self.value)),
            );
            return None;
        };
        for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
            problems.push(Problem::new(
                child_path(&self.path, key),
                format!("unknown field; expected one of {}", one_of(allowed)),
            ));
        }
        Some(Fields {
            map,
            path: self.path.clone(),
        })
    }

    /// A string.
    pub(crate) fn string(&self, problems: &mut Vec<Problem>) -> Option<&'a str> {
        match self.value {
            Value::String(s) => Some(s),
            other => {
                self.problem(
                    problems,
                    format!("expected a string, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A non-empty string.
    pub(crate) fn non_empty_string(&self, problems: &mut Vec<Problem>) -> Option<&'a str> {
        let s = self.string(problems)?;
        if s.trim().is_empty() {
            self.problem(problems, "is empty; expected a value");
            return None;
        }
        Some(s)
    }

    /// A string, number or boolean, as text: config values and label values
    /// are strings on the wire, and YAML writes `port: 8080` unquoted.
    pub(crate) fn scalar_text(&self, problems: &mut Vec<Problem>) -> Option<String> {
        match self.value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.problem(
                    problems,
                    format!("expected a string, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A whole number that fits in a `u32` (instance counts, weights).
    pub(crate) fn count(&self, problems: &mut Vec<Problem>) -> Option<u32> {
        if let Some(n) = self.value.as_u64().and_then(|n| u32::try_from(n).ok()) {
            return Some(n);
        }
        self.problem(
            problems,
            format!(
                "expected a whole number from 0 to {}, found {}",
                u32::MAX,
                describe(self.value)
            ),
        );
        None
    }

    /// A list, as nodes with indexed paths.
    pub(crate) fn list(&self, problems: &mut Vec<Problem>) -> Option<Vec<Node<'a>>> {
        let Some(items) = self.value.as_array() else {
            self.problem(
                problems,
                format!("expected a list, found {}", describe(self.value)),
            );
            return None;
        };
        Some(
            items
                .iter()
                .enumerate()
                .map(|(i, value)| Node {
                    value,
                    path: format!("{}[{i}]", self.path),
                })
                .collect(),
        )
    }

    /// A list of strings.
    pub(crate) fn string_list(&self, problems: &mut Vec<Problem>) -> Option<Vec<String>> {
        let items = self.list(problems)?;
        let strings: Vec<Option<String>> = items
            .iter()
            .map(|item| item.non_empty_string(problems).map(str::to_owned))
            .collect();
        strings.into_iter().collect()
    }

    /// A map of strings to strings (scalar values are accepted as text).
    pub(crate) fn string_map(
        &self,
        problems: &mut Vec<Problem>,
    ) -> Option<BTreeMap<String, String>> {
        let Some(map) = self.value.as_object() else {
            self.problem(
                problems,
                format!(
                    "expected a map of names to values, found {}",
                    describe(self.value)
                ),
            );
            return None;
        };
        let entries: Vec<Option<(String, String)>> = map
            .iter()
            .map(|(key, value)| {
                let node = Node {
                    value,
                    path: child_path(&self.path, key),
                };
                node.scalar_text(problems).map(|text| (key.clone(), text))
            })
            .collect();
        entries.into_iter().collect()
    }
}

impl<'a> Fields<'a> {
    /// The field `key`, if present and not `null`.
    pub(crate) fn optional(&self, key: &str) -> Option<Node<'a>> {
        self.map
            .get(key)
            .filter(|v| !v.is_null())
            .map(|value| Node {
                value,
                path: child_path(&self.path, key),
            })
    }

    /// The field `key`; when it is missing, a problem saying `expected`.
    pub(crate) fn required(
        &self,
        key: &str,
        expected: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Node<'a>> {
        let node = self.optional(key);
        if node.is_none() {
            problems.push(Problem::new(
                child_path(&self.path, key),
                format!("missing; expected {expected}"),
            ));
        }
        node
    }

    /// One of two spellings of the same field (`instances` or `replicas`);
    /// both at once is a problem.
    pub(crate) fn either(
        &self,
        key: &str,
        alias: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Node<'a>> {
        match (self.optional(key), self.optional(alias)) {
            (Some(node), Some(_)) => {
                node.problem(
                    problems,
                    format!("`{key}` and `{alias}` mean the same; give only one"),
                );
                None
            }
            (node, alias) => node.or(alias),
        }
    }

    /// The path of a field of this map, for problems about it.
    pub(crate) fn path_of(&self, key: &str) -> String {
        child_path(&self.path, key)
    }
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// "`a`, `b` or `c`".
pub(crate) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::from("nothing"),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// How a value reads in a message: its kind, and short values verbatim.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({s:?})"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a map".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_keys_are_reported_at_their_own_path() {
        let doc = json!({"spec": {"components": [], "policies": []}});
        let mut problems = Vec::new();
        let root = Node::root(&doc).fields(&["spec"], &mut problems).unwrap();
        let spec = root.optional("spec").unwrap();
        spec.fields(&["components"], &mut problems);
        assert_eq!(
            problems,
            [Problem::new(
                "spec.policies",
                "unknown field; expected one of `components`"
            )]
        );
    }

    #[test]
    fn negative_and_fractional_counts_say_what_was_expected() {
        for (value, found) in [(json!(-1), "a number (-1)"), (json!(1.5), "a number (1.5)")] {
            let mut problems = Vec::new();
            assert_eq!(Node::root(&value).count(&mut problems), None);
            assert!(problems[0].message.contains("whole number"), "{problems:?}");
            assert!(problems[0].message.ends_with(found), "{problems:?}");
        }
    }

    #[test]
    fn list_items_are_indexed() {
        let doc = json!({"xs": ["a", 1]});
        let mut problems = Vec::new();
        let fields = Node::root(&doc).fields(&["xs"], &mut problems).unwrap();
        let xs = fields.optional("xs").unwrap().string_list(&mut problems);
        assert_eq!(xs, None);
        assert_eq!(problems[0].path, "xs[1]");
    }

    #[test]
    fn one_of_reads_as_a_sentence() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
