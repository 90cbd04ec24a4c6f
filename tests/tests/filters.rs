//! Every filter of `GET /task/`: states, types, requiredTags and maxTags in CSV and repeated
//! forms, createdAfter/createdBefore in every date format, count, paging and sort order.
//! The fixture puts six tasks of four types into five states through the worker endpoints.

use blanket_blackbox::Server;
use serde_json::{Value, json};

const TYPES: &[(&str, &str)] = &[
    ("alpha.toml", "tags = [\"a\"]\ncommand = \"true\"\n"),
    ("beta.toml", "tags = [\"a\", \"b\"]\ncommand = \"true\"\n"),
    ("gamma.toml", "command = \"true\"\n"),
    ("delta.toml", "tags = [\"c\"]\ncommand = \"true\"\n"),
];

/// Six tasks, oldest first:
/// 1 alpha RUNNING, 2 beta CLAIMED, 3 gamma ERROR, 4 delta STOPPED, 5 alpha WAITING,
/// 6 beta WAITING.
struct Fixture {
    server: Server,
    tasks: Vec<Value>,
}

impl Fixture {
    fn new() -> Fixture {
        // A server reading local time instead of UTC would show up under this zone.
        let server = Server::builder()
            .types(TYPES)
            .env("TZ", "Asia/Kolkata")
            .start();
        let worker = server.register_worker(&[]);
        let submit = |name: &str| server.submit(&json!({ "type": name }));

        let first = submit("alpha");
        claim_expecting(&server, &worker, &first);
        server
            .put(&format!("/task/{}/run?pid=11", id(&first)))
            .expect_status(200);

        let second = submit("beta");
        claim_expecting(&server, &worker, &second);

        let third = submit("gamma");
        claim_expecting(&server, &worker, &third);
        server
            .put(&format!("/task/{}/run?pid=13", id(&third)))
            .expect_status(200);
        server
            .put(&format!(
                "/task/{}/finish?state=ERROR&exitCode=3",
                id(&third)
            ))
            .expect_status(200);

        let fourth = submit("delta");
        server
            .put(&format!("/task/{}/cancel", id(&fourth)))
            .expect_status(200);

        let fifth = submit("alpha");
        let sixth = submit("beta");
        let tasks: Vec<Value> = [first, second, third, fourth, fifth, sixth]
            .iter()
            .map(|task| server.get(&format!("/task/{}", id(task))).json())
            .collect();
        let states: Vec<&str> = tasks
            .iter()
            .map(|task| task["state"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            states,
            [
                "RUNNING", "CLAIMED", "ERROR", "STOPPED", "WAITING", "WAITING"
            ]
        );
        Fixture { server, tasks }
    }

    /// The positions (1-based, as in the fixture's doc) of the tasks `query` lists, in order.
    fn listed(&self, query: &str) -> Vec<usize> {
        let reply = self.server.get(&format!("/task/?{query}"));
        reply.expect_status(200);
        reply
            .json()
            .as_array()
            .unwrap_or_else(|| panic!("{query}: not a list: {}", reply.text()))
            .iter()
            .map(|task| {
                self.tasks
                    .iter()
                    .position(|known| known["id"] == task["id"])
                    .map(|index| index + 1)
                    .unwrap_or_else(|| panic!("{query}: unknown task listed: {task}"))
            })
            .collect()
    }

    fn created(&self, position: usize) -> i64 {
        self.tasks[position - 1]["createdTs"]
            .as_i64()
            .expect("createdTs is an integer")
    }
}

fn id(task: &Value) -> &str {
    task["id"].as_str().expect("a task has an id")
}

fn claim_expecting(server: &Server, worker: &str, task: &Value) {
    let claimed = server.claim(worker).expect("a task is waiting");
    assert_eq!(claimed["id"], task["id"]);
    assert_eq!(claimed["state"], "CLAIMED");
}

#[test]
fn default_order_is_oldest_first() {
    let fixture = Fixture::new();
    assert_eq!(fixture.listed(""), [1, 2, 3, 4, 5, 6]);
    let list = fixture.server.get("/task").json();
    let created: Vec<i64> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|task| task["createdTs"].as_i64().expect("createdTs"))
        .collect();
    assert!(
        created.windows(2).all(|pair| pair[0] <= pair[1]),
        "{created:?}"
    );
}

#[test]
fn reverse_sort_lists_newest_first() {
    let fixture = Fixture::new();
    assert_eq!(fixture.listed("reverseSort=true"), [6, 5, 4, 3, 2, 1]);
    assert_eq!(fixture.listed("reverseSort"), [6, 5, 4, 3, 2, 1]);
    assert_eq!(fixture.listed("reverseSort=false"), [1, 2, 3, 4, 5, 6]);
    assert_eq!(fixture.listed("reverseSort=true&limit=2"), [6, 5]);
    assert_eq!(fixture.listed("reverseSort=1&limit=2&offset=2"), [4, 3]);
}

#[test]
fn states_filter_takes_csv_and_repeated_parameters() {
    let fixture = Fixture::new();
    assert_eq!(fixture.listed("states=WAITING"), [5, 6]);
    assert_eq!(fixture.listed("states=RUNNING"), [1]);
    assert_eq!(fixture.listed("states=CLAIMED"), [2]);
    assert_eq!(fixture.listed("states=ERROR"), [3]);
    assert_eq!(fixture.listed("states=STOPPED"), [4]);
    assert_eq!(fixture.listed("states=SUCCESS"), Vec::<usize>::new());
    assert_eq!(fixture.listed("states=WAITING,ERROR"), [3, 5, 6]);
    assert_eq!(fixture.listed("states=WAITING%2CERROR"), [3, 5, 6]);
    assert_eq!(fixture.listed("states=WAITING&states=ERROR"), [3, 5, 6]);
    assert_eq!(
        fixture.listed("states=RUNNING,CLAIMED&states=STOPPED"),
        [1, 2, 4]
    );
}

#[test]
fn unknown_state_in_the_filter_is_400_naming_it() {
    let fixture = Fixture::new();
    let message = fixture.server.get("/task/?states=WAITING,BOGUS").error(400);
    assert!(message.contains("BOGUS"), "{message}");
    assert!(message.contains("states"), "{message}");
}

#[test]
fn types_filter_takes_csv_and_repeated_parameters() {
    let fixture = Fixture::new();
    assert_eq!(fixture.listed("types=alpha"), [1, 5]);
    assert_eq!(fixture.listed("types=alpha,gamma"), [1, 3, 5]);
    assert_eq!(fixture.listed("types=alpha&types=gamma"), [1, 3, 5]);
    assert_eq!(fixture.listed("types=nosuchtype"), Vec::<usize>::new());
}

#[test]
fn required_tags_keeps_tasks_that_have_every_tag() {
    let fixture = Fixture::new();
    assert_eq!(fixture.listed("requiredTags=a"), [1, 2, 5, 6]);
    assert_eq!(fixture.listed("requiredTags=a,b"), [2, 6]);
    assert_eq!(fixture.listed("requiredTags=a&requiredTags=b"), [2, 6]);
    assert_eq!(fixture.listed("requiredTags=b,c"), Vec::<usize>::new());
}

#[test]
fn max_tags_keeps_tasks_whose_tags_all_lie_in_the_set() {
    let fixture = Fixture::new();
    // The untagged gamma task fits any set.
    assert_eq!(fixture.listed("maxTags=a"), [1, 3, 5]);
    assert_eq!(fixture.listed("maxTags=a,b"), [1, 2, 3, 5, 6]);
    assert_eq!(fixture.listed("maxTags=a&maxTags=b"), [1, 2, 3, 5, 6]);
    assert_eq!(fixture.listed("maxTags=c"), [3, 4]);
    assert_eq!(fixture.listed("maxTags=zzz"), [3]);
}

#[test]
fn filters_combine_with_and() {
    let fixture = Fixture::new();
    assert_eq!(fixture.listed("states=WAITING&types=beta"), [6]);
    assert_eq!(
        fixture.listed("requiredTags=a&states=RUNNING,WAITING"),
        [1, 5, 6]
    );
    assert_eq!(fixture.listed("maxTags=a&states=ERROR,WAITING"), [3, 5]);
}

#[test]
fn count_true_answers_a_bare_number() {
    let fixture = Fixture::new();
    for (query, expected) in [
        ("count=true", "6"),
        ("count=true&states=WAITING", "2"),
        ("count=true&types=alpha,beta", "4"),
        ("states=SUCCESS&count=true", "0"),
    ] {
        let reply = fixture.server.get(&format!("/task/?{query}"));
        reply.expect_status(200);
        assert_eq!(reply.text(), expected, "{query}");
    }
}

#[test]
fn limit_and_offset_page_through_the_list() {
    let fixture = Fixture::new();
    assert_eq!(fixture.listed("limit=2"), [1, 2]);
    assert_eq!(fixture.listed("limit=2&offset=2"), [3, 4]);
    assert_eq!(fixture.listed("limit=2&offset=4"), [5, 6]);
    assert_eq!(fixture.listed("offset=5"), [6]);
    assert_eq!(fixture.listed("limit=2&offset=1&states=WAITING"), [6]);
    let past_the_end = fixture.server.get("/task/?offset=6");
    past_the_end.expect_status(200);
    assert_eq!(past_the_end.text(), "[]");
    let message = fixture.server.get("/task/?limit=many").error(400);
    assert!(message.contains("limit"), "{message}");
    let message = fixture.server.get("/task/?offset=-1").error(400);
    assert!(message.contains("offset"), "{message}");
}

/// Both bounds include their own second, as `TaskFilter` documents ("created at or after",
/// "created at or before").
#[test]
fn created_bounds_take_unix_seconds_inclusively() {
    let fixture = Fixture::new();
    let first = fixture.created(1);
    let last = fixture.created(6);
    let all = [1, 2, 3, 4, 5, 6];
    assert_eq!(fixture.listed(&format!("createdAfter={first}")), all);
    assert_eq!(fixture.listed(&format!("createdBefore={last}")), all);
    assert_eq!(
        fixture.listed(&format!("createdAfter={}", last + 1)),
        Vec::<usize>::new()
    );
    assert_eq!(
        fixture.listed(&format!("createdBefore={}", first - 1)),
        Vec::<usize>::new()
    );
    assert_eq!(
        fixture.listed(&format!("createdAfter={first}&createdBefore={last}")),
        all
    );
}

#[test]
fn created_bounds_take_every_documented_date_format_as_utc() {
    let fixture = Fixture::new();
    let first = fixture.created(1);
    let last = fixture.created(6);
    // Bounds around the tasks, each written in each format and truncated to what the format
    // can say; the expected list follows from the tasks' own createdTs.
    // Bounds never sit on a task's own second here (that edge has its own test), except when
    // a coarse format truncates onto one.
    let bounds = [
        first - 86_400 * 400,
        first - 3600,
        first - 1,
        last + 1,
        last + 86_400,
        last + 86_400 * 400,
    ];
    for bound in bounds {
        for (format, truncated, text) in formats(bound) {
            let encoded = encode(&text);
            let after: Vec<usize> = (1..=6)
                .filter(|position| fixture.created(*position) >= truncated)
                .collect();
            assert_eq!(
                fixture.listed(&format!("createdAfter={encoded}")),
                after,
                "createdAfter={text} ({format})"
            );
            let before: Vec<usize> = (1..=6)
                .filter(|position| fixture.created(*position) <= truncated)
                .collect();
            assert_eq!(
                fixture.listed(&format!("createdBefore={encoded}")),
                before,
                "createdBefore={text} ({format})"
            );
        }
    }
}

#[test]
fn rfc3339_offsets_name_the_same_instant() {
    let fixture = Fixture::new();
    let first = fixture.created(1);
    let (year, month, day, hour, minute, second) = civil(first + 2 * 3600 + 30 * 60);
    let shifted = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}+02:30");
    assert_eq!(
        fixture.listed(&format!("createdAfter={}", encode(&shifted))),
        [1, 2, 3, 4, 5, 6]
    );
    let message = fixture
        .server
        .get("/task/?createdAfter=yesterday-ish")
        .error(400);
    assert!(message.contains("createdAfter"), "{message}");
}

/// `bound` in each accepted format: (format name, the instant the text stands for, text).
fn formats(bound: i64) -> Vec<(&'static str, i64, String)> {
    let (year, month, day, hour, minute, second) = civil(bound);
    let minute_start = bound - second;
    let day_start = bound.div_euclid(86_400) * 86_400;
    vec![
        ("unix seconds", bound, bound.to_string()),
        (
            "RFC 3339",
            bound,
            format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"),
        ),
        (
            "YYYY-MM-DD",
            day_start,
            format!("{year:04}-{month:02}-{day:02}"),
        ),
        (
            "YYYY-MM-DDTHH:MM",
            minute_start,
            format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}"),
        ),
        (
            "YYYY/MM/DD HH:MM",
            minute_start,
            format!("{year:04}/{month:02}/{day:02} {hour:02}:{minute:02}"),
        ),
    ]
}

/// Unix seconds to UTC (year, month, day, hour, minute, second).
fn civil(seconds: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day, rest / 3600, rest % 3600 / 60, rest % 60)
}

fn encode(text: &str) -> String {
    text.replace('+', "%2B")
        .replace(' ', "%20")
        .replace(':', "%3A")
        .replace('/', "%2F")
}
