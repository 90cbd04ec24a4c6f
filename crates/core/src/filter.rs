//! Task list filters of `GET /task/` and the date formats the API accepts, parsed from query pairs.
//! Pure parsing, separate so the server, the HTML pages and the CLI read filters the same way;
//! it does not query anything: `store` turns a `TaskFilter` into SQL.

use std::str::FromStr;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::error::{Error, Result};
use crate::state::TaskState;

/// How many tasks a list returns when the query sets no `limit`.
pub const DEFAULT_LIMIT: usize = 500;

/// The largest `limit` accepted; a bigger one is refused rather than clamped, so a caller
/// never silently gets fewer tasks than it asked for.
pub const MAX_LIMIT: usize = 100_000;

/// Which tasks `GET /task/` returns and in what order.
///
/// Every list field is "any of" (`states`, `types`) or "all of" (`required_tags`), and an
/// empty list means no filter on that field. Times are unix seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskFilter {
    /// Tasks in any of these states; empty means every state.
    pub states: Vec<TaskState>,
    /// Tasks of any of these type names; empty means every type.
    pub types: Vec<String>,
    /// Tasks that carry all of these tags.
    pub required_tags: Vec<String>,
    /// When set, tasks whose every tag is in this set.
    pub max_tags: Option<Vec<String>>,
    /// Tasks created at or after this unix second.
    pub created_after: Option<i64>,
    /// Tasks created at or before this unix second.
    pub created_before: Option<i64>,
    /// At most this many tasks, at most [`MAX_LIMIT`].
    pub limit: usize,
    /// Skip this many matching tasks first.
    pub offset: usize,
    /// Newest first instead of the default oldest first.
    pub reverse: bool,
}

impl Default for TaskFilter {
    /// No filters, [`DEFAULT_LIMIT`] tasks, oldest first.
    fn default() -> Self {
        TaskFilter {
            states: Vec::new(),
            types: Vec::new(),
            required_tags: Vec::new(),
            max_tags: None,
            created_after: None,
            created_before: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
            reverse: false,
        }
    }
}

impl TaskFilter {
    /// Builds a filter from the query pairs of `GET /task/` (already percent-decoded).
    ///
    /// Keys: `states`, `types`, `requiredTags`, `maxTags` (each a comma-separated list, a
    /// repeated parameter, or both), `createdAfter`, `createdBefore` (see [`parse_time`]),
    /// `limit`, `offset`, `reverseSort` (`true`/`false`/`1`/`0`/`yes`/`no`/`on`/`off`; a bare
    /// `reverseSort` means true). Blank list items are skipped and an empty value leaves that
    /// filter unset, because HTML forms send every field, filled or not. Unknown keys (such as
    /// `count`, which the server handles) are ignored; a repeated single-valued key keeps its
    /// last value.
    ///
    /// # Errors
    /// `Invalid` naming the parameter, the bad value and an example of the right form.
    pub fn from_query_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<TaskFilter> {
        let mut filter = TaskFilter::default();
        for (key, value) in pairs {
            match key {
                "states" => {
                    for item in list_items(value) {
                        let state = TaskState::from_str(item).map_err(|error| {
                            Error::Invalid(format!(
                                "query parameter states: {error} (for example states=RUNNING,WAITING)"
                            ))
                        })?;
                        if !filter.states.contains(&state) {
                            filter.states.push(state);
                        }
                    }
                }
                "types" => push_unique(&mut filter.types, value),
                "requiredTags" => push_unique(&mut filter.required_tags, value),
                // An empty value is a blank form field, not "tasks without tags".
                "maxTags" if list_items(value).next().is_some() => {
                    push_unique(filter.max_tags.get_or_insert_with(Vec::new), value);
                }
                "createdAfter" if !value.trim().is_empty() => {
                    filter.created_after = Some(parse_time_parameter("createdAfter", value)?);
                }
                "createdBefore" if !value.trim().is_empty() => {
                    filter.created_before = Some(parse_time_parameter("createdBefore", value)?);
                }
                "limit" if !value.trim().is_empty() => filter.limit = parse_limit(value)?,
                "offset" if !value.trim().is_empty() => {
                    filter.offset = value.trim().parse().map_err(|_| {
                        Error::Invalid(format!(
                            "query parameter offset={value:?} is not a whole number of tasks to skip: use a number from 0 up, for example offset=500"
                        ))
                    })?;
                }
                "reverseSort" => filter.reverse = parse_flag("reverseSort", value)?,
                _ => {}
            }
        }
        Ok(filter)
    }

    /// Whether a task with `tags` passes the tag filters: it has every tag of
    /// `required_tags`, and, when `max_tags` is set, each of its tags is in `max_tags`.
    pub fn matches_tags(&self, tags: &[String]) -> bool {
        let has_required = self
            .required_tags
            .iter()
            .all(|required| tags.contains(required));
        let within_max = self
            .max_tags
            .as_ref()
            .is_none_or(|allowed| tags.iter().all(|tag| allowed.contains(tag)));
        has_required && within_max
    }
}

/// Parses a point in time into unix seconds.
///
/// Accepted: unix seconds (`1700000000`), RFC 3339 with a zone or offset
/// (`2024-05-01T12:30:00Z`, `2024-05-01T12:30:00+02:00`), `2024-05-01`,
/// `2024-05-01T12:30`, `2024-05-01T12:30:00`, `2024/05/01 12:30` and `2024/05/01`; a space
/// may stand for the `T`. Forms without a zone are UTC.
///
/// # Errors
/// `Invalid` quoting the text and listing the accepted forms.
pub fn parse_time(text: &str) -> Result<i64> {
    let trimmed = text.trim();
    if let Ok(seconds) = trimmed.parse::<i64>() {
        return Ok(seconds);
    }
    if let Ok(moment) = OffsetDateTime::parse(trimmed, &Rfc3339) {
        return Ok(moment.unix_timestamp());
    }
    let date_times = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day] [hour]:[minute]"),
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        format_description!("[year]/[month]/[day] [hour]:[minute]"),
        format_description!("[year]/[month]/[day] [hour]:[minute]:[second]"),
    ];
    for format in date_times {
        if let Ok(moment) = PrimitiveDateTime::parse(trimmed, format) {
            return Ok(moment.assume_utc().unix_timestamp());
        }
    }
    let dates = [
        format_description!("[year]-[month]-[day]"),
        format_description!("[year]/[month]/[day]"),
    ];
    for format in dates {
        if let Ok(date) = Date::parse(trimmed, format) {
            return Ok(date.midnight().assume_utc().unix_timestamp());
        }
    }
    Err(Error::Invalid(format!(
        "time {text:?} is not in a known form: use unix seconds (1700000000), RFC 3339 \
         (2024-05-01T12:30:00Z or 2024-05-01T12:30:00+02:00), 2024-05-01, 2024-05-01T12:30, \
         2024-05-01T12:30:00, 2024/05/01 12:30 or 2024/05/01 (UTC when no zone is given)"
    )))
}

/// The non-blank items of one comma-separated value, trimmed.
fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Appends the items of `value` that `list` does not hold yet, keeping their order.
fn push_unique(list: &mut Vec<String>, value: &str) {
    for item in list_items(value) {
        if !list.iter().any(|known| known == item) {
            list.push(item.to_owned());
        }
    }
}

fn parse_time_parameter(parameter: &str, value: &str) -> Result<i64> {
    parse_time(value).map_err(|error| {
        Error::Invalid(format!(
            "query parameter {parameter} (for example {parameter}=2024-05-01): {error}"
        ))
    })
}

fn parse_limit(value: &str) -> Result<usize> {
    let invalid = || {
        Error::Invalid(format!(
            "query parameter limit={value:?} is not a number of tasks from 0 to {MAX_LIMIT}: \
             use for example limit=100, and offset to page through more"
        ))
    };
    let limit: usize = value.trim().parse().map_err(|_| invalid())?;
    if limit > MAX_LIMIT {
        return Err(invalid());
    }
    Ok(limit)
}

fn parse_flag(parameter: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        // A bare `?reverseSort` reads as a switch turned on.
        "" | "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::Invalid(format!(
            "query parameter {parameter}={value:?} is not true or false: use {parameter}=true or {parameter}=false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn filter(query: &[(&'static str, &'static str)]) -> Result<TaskFilter> {
        TaskFilter::from_query_pairs(query.iter().copied())
    }

    fn message(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(Error::Invalid(message)) => message,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn no_parameters_give_the_default_filter() {
        let parsed = filter(&[]).unwrap();
        assert_eq!(parsed, TaskFilter::default());
        assert_eq!(parsed.limit, DEFAULT_LIMIT);
        assert_eq!(parsed.offset, 0);
        assert!(!parsed.reverse);
        assert!(parsed.max_tags.is_none());
    }

    #[test]
    fn states_accept_csv_and_repeated_parameters_in_any_case() {
        let parsed = filter(&[("states", "RUNNING, waiting,"), ("states", "Error")]).unwrap();
        assert_eq!(
            parsed.states,
            vec![TaskState::Running, TaskState::Waiting, TaskState::Error]
        );
    }

    #[test]
    fn duplicate_list_items_are_kept_once() {
        let parsed = filter(&[
            ("states", "RUNNING,RUNNING"),
            ("types", "echo,echo"),
            ("types", "echo"),
        ])
        .unwrap();
        assert_eq!(parsed.states, vec![TaskState::Running]);
        assert_eq!(parsed.types, vec!["echo".to_owned()]);
    }

    #[test]
    fn types_and_tags_accept_csv_and_repeated_parameters() {
        let parsed = filter(&[
            ("types", "echo_task, render"),
            ("types", "python_hello"),
            ("requiredTags", "bash"),
            ("requiredTags", "unix, ,gpu"),
            ("maxTags", "bash,unix"),
            ("maxTags", "gpu"),
        ])
        .unwrap();
        assert_eq!(parsed.types, ["echo_task", "render", "python_hello"]);
        assert_eq!(parsed.required_tags, ["bash", "unix", "gpu"]);
        assert_eq!(
            parsed.max_tags,
            Some(vec!["bash".to_owned(), "unix".to_owned(), "gpu".to_owned()])
        );
    }

    #[test]
    fn blank_values_leave_filters_unset() {
        let parsed = filter(&[
            ("states", ""),
            ("types", " , "),
            ("requiredTags", ""),
            ("maxTags", ""),
            ("createdAfter", ""),
            ("createdBefore", " "),
            ("limit", ""),
            ("offset", ""),
        ])
        .unwrap();
        assert_eq!(parsed, TaskFilter::default());
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        let parsed = filter(&[("count", "true"), ("foo", "bar"), ("limit", "3")]).unwrap();
        assert_eq!(parsed.limit, 3);
    }

    #[test]
    fn created_range_limit_offset_and_order_are_read() {
        let parsed = filter(&[
            ("createdAfter", "2024-01-01"),
            ("createdBefore", "1704153600"),
            ("limit", "20"),
            ("offset", "40"),
            ("reverseSort", "true"),
        ])
        .unwrap();
        assert_eq!(parsed.created_after, Some(1_704_067_200));
        assert_eq!(parsed.created_before, Some(1_704_153_600));
        assert_eq!(parsed.limit, 20);
        assert_eq!(parsed.offset, 40);
        assert!(parsed.reverse);
    }

    #[test]
    fn reverse_sort_spellings() {
        for (value, expected) in [
            ("true", true),
            ("1", true),
            ("", true),
            ("TRUE", true),
            ("yes", true),
            ("on", true),
            ("false", false),
            ("0", false),
            ("no", false),
            ("off", false),
        ] {
            let parsed = TaskFilter::from_query_pairs([("reverseSort", value)]).unwrap();
            assert_eq!(parsed.reverse, expected, "reverseSort={value}");
        }
        let error = message(filter(&[("reverseSort", "sideways")]));
        assert!(error.contains("reverseSort=\"sideways\""), "{error}");
        assert!(error.contains("reverseSort=true"), "{error}");
    }

    #[test]
    fn unknown_state_names_the_parameter_value_and_choices() {
        let error = message(filter(&[("states", "RUNNING,DONE")]));
        assert!(error.starts_with("query parameter states"), "{error}");
        assert!(error.contains("\"DONE\""), "{error}");
        assert!(error.contains("WAITING"), "{error}");
        assert!(error.contains("states=RUNNING,WAITING"), "{error}");
    }

    #[test]
    fn bad_time_names_the_parameter_value_and_forms() {
        let error = message(filter(&[("createdAfter", "yesterday")]));
        assert!(error.starts_with("query parameter createdAfter"), "{error}");
        assert!(error.contains("\"yesterday\""), "{error}");
        assert!(error.contains("2024/05/01 12:30"), "{error}");
        let error = message(filter(&[("createdBefore", "2024-13-01")]));
        assert!(error.contains("createdBefore"), "{error}");
    }

    #[test]
    fn bad_limit_and_offset_are_refused() {
        let error = message(filter(&[("limit", "-1")]));
        assert!(error.contains("limit=\"-1\""), "{error}");
        assert!(error.contains("limit=100"), "{error}");
        let error = message(filter(&[("limit", "100001")]));
        assert!(error.contains("100000"), "{error}");
        assert_eq!(filter(&[("limit", "100000")]).unwrap().limit, MAX_LIMIT);
        assert_eq!(filter(&[("limit", "0")]).unwrap().limit, 0);
        let error = message(filter(&[("offset", "ten")]));
        assert!(error.contains("offset=\"ten\""), "{error}");
        assert!(error.contains("offset=500"), "{error}");
    }

    #[test]
    fn repeated_single_valued_parameter_keeps_the_last() {
        let parsed = filter(&[("limit", "5"), ("limit", "7")]).unwrap();
        assert_eq!(parsed.limit, 7);
    }

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn required_tags_must_all_be_present() {
        let parsed = filter(&[("requiredTags", "bash,unix")]).unwrap();
        assert!(parsed.matches_tags(&tags(&["bash", "unix", "gpu"])));
        assert!(!parsed.matches_tags(&tags(&["bash"])));
        assert!(!parsed.matches_tags(&[]));
    }

    #[test]
    fn max_tags_bound_the_task_tags() {
        let parsed = filter(&[("maxTags", "bash,unix")]).unwrap();
        assert!(parsed.matches_tags(&tags(&["bash"])));
        assert!(parsed.matches_tags(&tags(&["unix", "bash"])));
        assert!(parsed.matches_tags(&[]));
        assert!(!parsed.matches_tags(&tags(&["bash", "gpu"])));
    }

    #[test]
    fn no_tag_filters_match_everything() {
        let parsed = TaskFilter::default();
        assert!(parsed.matches_tags(&[]));
        assert!(parsed.matches_tags(&tags(&["anything"])));
    }

    #[test]
    fn required_and_max_tags_combine() {
        let parsed = filter(&[("requiredTags", "bash"), ("maxTags", "bash,unix")]).unwrap();
        assert!(parsed.matches_tags(&tags(&["bash", "unix"])));
        assert!(!parsed.matches_tags(&tags(&["unix"])));
        assert!(!parsed.matches_tags(&tags(&["bash", "gpu"])));
    }

    #[test]
    fn parse_time_reads_unix_seconds() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_time(" 0 ").unwrap(), 0);
    }

    #[test]
    fn parse_time_reads_rfc3339_with_zone_or_offset() {
        assert_eq!(parse_time("2024-05-01T12:30:00Z").unwrap(), 1_714_566_600);
        assert_eq!(
            parse_time("2024-05-01T14:30:00+02:00").unwrap(),
            1_714_566_600
        );
        assert_eq!(
            parse_time("2024-05-01T12:30:00.750Z").unwrap(),
            1_714_566_600
        );
    }

    #[test]
    fn parse_time_reads_dates_and_local_forms_as_utc() {
        assert_eq!(parse_time("2024-05-01").unwrap(), 1_714_521_600);
        assert_eq!(parse_time("2024-05-01T12:30").unwrap(), 1_714_566_600);
        assert_eq!(parse_time("2024-05-01T12:30:15").unwrap(), 1_714_566_615);
        assert_eq!(parse_time("2024-05-01 12:30").unwrap(), 1_714_566_600);
        assert_eq!(parse_time("2024/05/01 12:30").unwrap(), 1_714_566_600);
        assert_eq!(parse_time("2024/05/01 12:30:15").unwrap(), 1_714_566_615);
        assert_eq!(parse_time("2024/05/01").unwrap(), 1_714_521_600);
    }

    #[test]
    fn parse_time_refuses_other_forms_listing_the_accepted_ones() {
        for bad in [
            "",
            "soon",
            "2024-5-1x",
            "2024-02-30",
            "2024-05-01T25:00",
            "01/05/2024",
        ] {
            let error = message(parse_time(bad));
            assert!(error.contains(&format!("{bad:?}")), "{error}");
            assert!(error.contains("unix seconds"), "{error}");
            assert!(error.contains("RFC 3339"), "{error}");
            assert!(error.contains("2024/05/01"), "{error}");
        }
    }

    const KEYS: [&str; 10] = [
        "states",
        "types",
        "requiredTags",
        "maxTags",
        "createdAfter",
        "createdBefore",
        "limit",
        "offset",
        "reverseSort",
        "count",
    ];

    /// Distinct list items in the order first given, as the parser keeps them.
    fn distinct(items: Vec<String>) -> Vec<String> {
        let mut kept: Vec<String> = Vec::new();
        for item in items {
            if !kept.contains(&item) {
                kept.push(item);
            }
        }
        kept
    }

    fn names() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[a-z0-9_.-]{1,8}", 0..4).prop_map(distinct)
    }

    prop_compose! {
        fn any_filter()(
            states in prop::sample::subsequence(TaskState::ALL.to_vec(), 0..=TaskState::ALL.len()).prop_shuffle(),
            types in names(),
            required_tags in names(),
            max_tags in prop::option::of(names().prop_filter("an empty maxTags is no filter", |tags| !tags.is_empty())),
            created_after in prop::option::of(any::<i64>()),
            created_before in prop::option::of(any::<i64>()),
            limit in 0..=MAX_LIMIT,
            offset in any::<usize>(),
            reverse in any::<bool>(),
        ) -> TaskFilter {
            TaskFilter { states, types, required_tags, max_tags, created_after, created_before, limit, offset, reverse }
        }
    }

    /// The query a client writes for `filter`: lists as CSV, times as unix seconds.
    fn canonical_query(filter: &TaskFilter) -> Vec<(&'static str, String)> {
        let mut query = vec![
            (
                "states",
                filter
                    .states
                    .iter()
                    .map(|state| state.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("types", filter.types.join(",")),
            ("requiredTags", filter.required_tags.join(",")),
            ("limit", filter.limit.to_string()),
            ("offset", filter.offset.to_string()),
            ("reverseSort", filter.reverse.to_string()),
        ];
        if let Some(max_tags) = &filter.max_tags {
            query.push(("maxTags", max_tags.join(",")));
        }
        if let Some(seconds) = filter.created_after {
            query.push(("createdAfter", seconds.to_string()));
        }
        if let Some(seconds) = filter.created_before {
            query.push(("createdBefore", seconds.to_string()));
        }
        query
    }

    proptest! {
        #[test]
        fn any_query_parses_or_is_refused_without_panicking(
            pairs in prop::collection::vec(
                (prop_oneof![prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned), "\\PC{0,6}"], "\\PC{0,24}|[0-9 ,:/TZ+-]{0,24}"),
                0..8,
            )
        ) {
            let parsed = TaskFilter::from_query_pairs(pairs.iter().map(|(key, value)| (key.as_str(), value.as_str())));
            if let Ok(filter) = parsed {
                prop_assert!(filter.limit <= MAX_LIMIT);
            }
        }

        #[test]
        fn a_filters_canonical_query_parses_back_equal(filter in any_filter()) {
            let query = canonical_query(&filter);
            let parsed = TaskFilter::from_query_pairs(query.iter().map(|(key, value)| (*key, value.as_str()))).unwrap();
            prop_assert_eq!(parsed, filter);
        }

        #[test]
        fn any_time_text_parses_or_is_refused_without_panicking(text in "\\PC{0,32}|[0-9]{1,4}[-/][0-9]{1,2}[-/][0-9]{1,2}([T ][0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2})?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?") {
            let _ = parse_time(&text);
        }

        #[test]
        fn every_written_form_of_a_moment_parses_to_its_second(seconds in 0..=253_402_300_799_i64) {
            let moment = OffsetDateTime::from_unix_timestamp(seconds).unwrap();
            let to_minute = seconds - seconds.rem_euclid(60);
            let to_day = seconds - seconds.rem_euclid(86_400);
            let forms = [
                (moment.format(&Rfc3339).unwrap(), seconds),
                (moment.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")).unwrap(), seconds),
                (moment.format(format_description!("[year]/[month]/[day] [hour]:[minute]:[second]")).unwrap(), seconds),
                (moment.format(format_description!("[year]-[month]-[day]T[hour]:[minute]")).unwrap(), to_minute),
                (moment.format(format_description!("[year]/[month]/[day] [hour]:[minute]")).unwrap(), to_minute),
                (moment.format(format_description!("[year]-[month]-[day]")).unwrap(), to_day),
                (moment.format(format_description!("[year]/[month]/[day]")).unwrap(), to_day),
                (seconds.to_string(), seconds),
            ];
            for (text, expected) in forms {
                prop_assert_eq!(parse_time(&text).unwrap(), expected, "{}", text);
            }
        }
    }
}
