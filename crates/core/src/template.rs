//! Renders a task type's command with the task's environment, in the old server's `{{.NAME}}`
//! syntax so old type files work unchanged. Only variable references are supported: no `if`,
//! `range`, pipes or functions; values also reach the process as environment variables
//! (`$NAME`), the injection-safe form.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Renders `template`, replacing each `{{.NAME}}` (spaces inside the braces allowed, as in
/// `{{ .NAME }}`) with the value of `NAME` in `environment`, or with nothing when it is absent.
///
/// # Errors
/// `Error::Invalid` for an unclosed `{{` or any action other than a variable reference; the
/// message gives the byte offset and the offending snippet.
pub fn render(template: &str, environment: &BTreeMap<String, String>) -> Result<String> {
    let mut rendered = String::with_capacity(template.len());
    for piece in Pieces::new(template) {
        match piece? {
            Piece::Text(text) => rendered.push_str(text),
            Piece::Variable(name) => {
                if let Some(value) = environment.get(name) {
                    rendered.push_str(value);
                }
            }
        }
    }
    Ok(rendered)
}

/// Checks that `template` uses only `{{.NAME}}` references, without rendering it; used when a
/// task type file is loaded so a bad command is reported before anyone submits a task.
///
/// # Errors
/// The same `Error::Invalid` that [`render`] would return.
pub fn check(template: &str) -> Result<()> {
    Pieces::new(template)
        .try_for_each(|piece| piece.map(drop))
        .map_err(Error::from)
}

/// The variable names `template` references, each once, in order of first use. Actions that
/// are not valid references are skipped, so this never fails; call [`check`] to find them.
pub fn referenced_names(template: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for piece in Pieces::new(template) {
        if let Ok(Piece::Variable(name)) = piece
            && !names.iter().any(|known| known == name)
        {
            names.push(name.to_owned());
        }
    }
    names
}

/// Whether `name` can be a task variable: `[A-Za-z_][A-Za-z0-9_]*`, the names a shell can
/// read back as `$NAME` and a template can reference as `{{.NAME}}`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|rest| rest.is_ascii_alphanumeric() || rest == '_')
}

/// The rule [`is_variable_name`] checks, worded for error messages.
pub(crate) const NAME_RULE: &str = "names must match [A-Za-z_][A-Za-z0-9_]* \
                                    (letters, digits and underscores, not starting with a digit)";

/// The byte offset of the first problem in `template`, if any. Task type files use it to
/// point at the exact line and column of a bad action.
pub(crate) fn error_offset(template: &str) -> Option<usize> {
    Pieces::new(template).find_map(|piece| match piece {
        Ok(_) => None,
        Err(problem) => Some(problem.offset),
    })
}

/// The tail of every error message, so each one says what is allowed.
const SUPPORTED: &str = "only {{.NAME}} variable references are supported \
                         (read the value as \"$NAME\" in the command for anything more)";

/// Snippets longer than this are cut in error messages, so a runaway action stays readable.
const SNIPPET_CHARS: usize = 40;

/// One piece of a template, borrowed from it.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Variable(&'a str),
}

/// A problem found while scanning, before it becomes an [`Error`].
#[derive(Debug)]
struct Problem {
    offset: usize,
    message: String,
}

impl From<Problem> for Error {
    fn from(problem: Problem) -> Self {
        Error::Invalid(problem.message)
    }
}

/// Splits a template into pieces. After an unclosed `{{` it stops, since the rest is no
/// longer text; after an unsupported action it goes on, so all valid references are seen.
struct Pieces<'a> {
    rest: &'a str,
    offset: usize,
}

impl<'a> Pieces<'a> {
    fn new(template: &'a str) -> Self {
        Pieces {
            rest: template,
            offset: 0,
        }
    }

    fn advance(&mut self, length: usize) -> &'a str {
        // `length` always ends at a char boundary (it comes from `find` or ASCII delimiters);
        // the fallback only keeps the scanner from panicking if that ever stopped holding.
        let (taken, rest) = self
            .rest
            .split_at_checked(length)
            .unwrap_or((self.rest, ""));
        self.rest = rest;
        self.offset += taken.len();
        taken
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = std::result::Result<Piece<'a>, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let start = self.offset;
        let Some(after_open) = self.rest.strip_prefix("{{") else {
            let text_length = self.rest.find("{{").unwrap_or(self.rest.len());
            return Some(Ok(Piece::Text(self.advance(text_length))));
        };
        let Some((inner, _)) = after_open.split_once("}}") else {
            let snippet = snippet(self.advance(self.rest.len()));
            return Some(Err(Problem {
                offset: start,
                message: format!("unclosed \"{{{{\" at byte {start} ({snippet}): {SUPPORTED}"),
            }));
        };
        let action = self.advance("{{".len() + inner.len() + "}}".len());
        let reference = inner
            .trim_matches(|c: char| c.is_ascii_whitespace())
            .strip_prefix('.');
        Some(match reference {
            Some(name) if is_variable_name(name) => Ok(Piece::Variable(name)),
            Some(_) => Err(Problem {
                offset: start,
                message: format!(
                    "bad variable reference {} at byte {start}: {NAME_RULE}; {SUPPORTED}",
                    snippet(action)
                ),
            }),
            None => Err(Problem {
                offset: start,
                message: format!(
                    "unsupported template action {} at byte {start}: {SUPPORTED}",
                    snippet(action)
                ),
            }),
        })
    }
}

/// Quotes `text` for an error message, cut to [`SNIPPET_CHARS`] characters.
fn snippet(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{:?}", format!("{}...", text.get(..cut).unwrap_or(text))),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn environment(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn invalid_message(result: Result<String>) -> String {
        match result {
            Err(Error::Invalid(message)) => message,
            other => panic!("expected Error::Invalid, got {other:?}"),
        }
    }

    #[test]
    fn renders_references_with_and_without_inner_spaces() {
        let env = environment(&[("NAME", "world"), ("GREETING", "hello")]);
        let rendered = render("echo '{{ .GREETING }} {{.NAME}}!'", &env).unwrap();
        assert_eq!(rendered, "echo 'hello world!'");
    }

    #[test]
    fn absent_variable_renders_empty() {
        let rendered = render("a{{.MISSING}}b", &BTreeMap::new()).unwrap();
        assert_eq!(rendered, "ab");
    }

    #[test]
    fn text_without_actions_is_unchanged() {
        let text = "for i in 1 2; do echo \"$i\" }}; done — ünïcode";
        assert_eq!(render(text, &BTreeMap::new()).unwrap(), text);
    }

    #[test]
    fn values_are_not_rendered_again() {
        let env = environment(&[("A", "{{.B}}"), ("B", "nope")]);
        assert_eq!(render("{{.A}}", &env).unwrap(), "{{.B}}");
    }

    #[test]
    fn control_actions_are_invalid_with_offset_and_snippet() {
        let message = invalid_message(render("echo {{if .X}}y{{end}}", &BTreeMap::new()));
        assert!(message.contains("\"{{if .X}}\""), "{message}");
        assert!(message.contains("at byte 5"), "{message}");
        assert!(message.contains("only {{.NAME}}"), "{message}");
    }

    #[test]
    fn pipes_and_functions_are_invalid() {
        for template in [
            "{{.X | printf \"%q\"}}",
            "{{printf \"%s\" .X}}",
            "{{/* note */}}",
        ] {
            assert!(check(template).is_err(), "{template}");
        }
    }

    #[test]
    fn unclosed_action_is_invalid() {
        let message = invalid_message(render("ok {{.NAME", &BTreeMap::new()));
        assert!(
            message.starts_with("unclosed \"{{\" at byte 3"),
            "{message}"
        );
    }

    #[test]
    fn bad_names_are_invalid() {
        for template in [
            "{{.}}",
            "{{.1X}}",
            "{{.A-B}}",
            "{{. X}}",
            "{{.Größe}}",
            "{{.A.B}}",
        ] {
            let message = invalid_message(render(template, &BTreeMap::new()));
            assert!(message.contains("bad variable reference"), "{message}");
        }
    }

    #[test]
    fn long_snippets_are_cut() {
        let template = format!("{{{{{}}}}}", "x".repeat(200));
        let message = invalid_message(render(&template, &BTreeMap::new()));
        assert!(message.contains("..."), "{message}");
        assert!(message.len() < 250, "{message}");
    }

    #[test]
    fn check_accepts_valid_templates() {
        assert!(check("").is_ok());
        assert!(check("echo {{ .A }} {{.b_2}} {{\t._C\n}}").is_ok());
    }

    #[test]
    fn referenced_names_are_unique_in_order_and_skip_bad_actions() {
        let names = referenced_names("{{.B}} {{.A}} {{if}} {{.B}} {{ .C }}");
        assert_eq!(names, ["B", "A", "C"]);
    }

    #[test]
    fn error_offset_points_at_the_first_bad_action() {
        assert_eq!(error_offset("{{.A}} {{.}}"), Some(7));
        assert_eq!(error_offset("ok"), None);
    }

    #[test]
    fn variable_names() {
        for good in ["A", "_", "a_1", "INPUT_FILE"] {
            assert!(is_variable_name(good), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "é", "A.B"] {
            assert!(!is_variable_name(bad), "{bad}");
        }
    }

    #[test]
    fn tricky_inputs_never_panic() {
        let fragments = [
            "{{", "}}", "{", "}", "{{.}}", ".", "{{.A}}", " ", "é", "日本", "🦀", "\u{0}", "\n",
            "{{{", "}}}", "{{ .", "A", "{{-", "-}}",
        ];
        let env = environment(&[("A", "🦀")]);
        // Every ordered triple of fragments, so delimiters get split across multibyte chars.
        for first in fragments {
            for second in fragments {
                for third in fragments {
                    let template = format!("{first}{second}{third}");
                    let rendered = render(&template, &env);
                    assert_eq!(rendered.is_ok(), check(&template).is_ok(), "{template:?}");
                    assert_eq!(rendered.is_ok(), error_offset(&template).is_none());
                    let _ = referenced_names(&template);
                }
            }
        }
    }

    /// A template piece: text without braces, or a reference to one of a few names, spaced
    /// the ways old type files space them.
    fn piece() -> impl Strategy<Value = (String, Option<String>)> {
        prop_oneof![
            "[a-z0-9 $.}\n'\"-]{0,12}".prop_map(|text| (text, None)),
            ("[A-C]", "[ ]{0,2}", "[ ]{0,2}").prop_map(|(name, before, after)| {
                (format!("{{{{{before}.{name}{after}}}}}"), Some(name))
            }),
        ]
    }

    proptest! {
        #[test]
        fn any_text_renders_or_fails_without_panicking(
            template in "(\\PC|\\{\\{|\\}\\}|\\{\\{\\.|[ .A-Z_])*",
            value in "\\PC{0,8}",
        ) {
            let environment = environment(&[("A", &value), ("NAME", &value)]);
            let rendered = render(&template, &environment);
            prop_assert_eq!(rendered.is_ok(), check(&template).is_ok());
            prop_assert_eq!(rendered.is_err(), error_offset(&template).is_some());
            if let Some(offset) = error_offset(&template) {
                prop_assert!(template.is_char_boundary(offset) && offset < template.len());
            }
            let _ = referenced_names(&template);
        }

        #[test]
        fn render_replaces_every_reference_to_a_defined_name(
            pieces in prop::collection::vec(piece(), 0..10),
            values in prop::collection::btree_map("[A-C]", "[a-z {}.]{0,6}", 0..3),
        ) {
            let template: String = pieces.iter().map(|(text, _)| text.as_str()).collect();
            let expected: String = pieces
                .iter()
                .map(|(text, name)| match name {
                    Some(name) => values.get(name).cloned().unwrap_or_default(),
                    None => text.clone(),
                })
                .collect();
            let rendered = render(&template, &values).unwrap();
            prop_assert_eq!(&rendered, &expected);
            for name in values.keys() {
                let reference = format!("{{{{.{name}}}}}");
                // Values hold no capitals, so only an unreplaced reference could spell one.
                prop_assert!(!rendered.contains(&reference), "{rendered:?}");
            }
            let mut names: Vec<String> = Vec::new();
            for name in pieces.iter().filter_map(|(_, name)| name.clone()) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            prop_assert_eq!(referenced_names(&template), names);
        }
    }
}
