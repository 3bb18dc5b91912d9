//! Hostile manifests: the example apps with bytes overwritten, lines
//! dropped or repeated, and YAML that is only shaped like a manifest.
//! Parsing and validation answer with a manifest or with problems, never a
//! panic. `PROPTEST_CASES=1000000 cargo test -p wadm --release --test all
//! fuzz` is a long run.

use proptest::prelude::*;
use wadm::Manifest;

use crate::support::example_text;

/// One of the example manifests as text.
fn base() -> impl Strategy<Value = String> {
    prop_oneof![Just("dev.yaml"), Just("prod.yaml")].prop_map(example_text)
}

#[derive(Clone, Debug)]
enum Edit {
    Overwrite(usize, char),
    DropLine(usize),
    RepeatLine(usize),
    Indent(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (
            any::<usize>(),
            prop_oneof![
                Just(':'),
                Just('-'),
                Just(' '),
                Just('"'),
                Just('['),
                Just('{'),
                Just('\n'),
                any::<char>()
            ]
        )
            .prop_map(|(at, c)| Edit::Overwrite(at, c)),
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::RepeatLine),
        any::<usize>().prop_map(Edit::Indent),
    ];
    proptest::collection::vec(edit, 1..6)
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for edit in edits {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match edit {
            Edit::Overwrite(at, c) => {
                let line = &mut lines[at % n];
                let mut chars: Vec<char> = line.chars().collect();
                if chars.is_empty() {
                    chars.push(*c);
                } else {
                    let i = (at / n) % chars.len();
                    chars[i] = *c;
                }
                *line = chars.into_iter().collect();
            }
            Edit::DropLine(at) => {
                lines.remove(at % n);
            }
            Edit::RepeatLine(at) => {
                let line = lines[at % n].clone();
                lines.insert(at % n, line);
            }
            Edit::Indent(at) => lines[at % n].insert_str(0, "  "),
        }
    }
    lines.join("\n")
}

proptest! {
    #[test]
    fn mangled_manifests_never_panic(text in base(), edits in edits()) {
        let mangled = apply(&text, &edits);
        let _ = Manifest::parse(&mangled);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = Manifest::parse(&text);
        let _ = Manifest::from_json(&text);
    }
}
