//! pytest's JUnit XML report (`--junitxml`, `junit_family=xunit1`) read into per-test results.
//!
//! A test's id is pytest's node id, rebuilt from the `file`, `classname` and `name` attributes
//! (`tests/test_a.py::TestX::test_y[1]`): the same test has the same id on the base commit and
//! on a patchset. A `testcase` with a `failure` or `error` child is failing (a collection error
//! is a testcase named after its module), with `skipped` skipped, else passed.

use noctune_core::patchset::TestResults;
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

#[derive(Default)]
struct Case {
    id: String,
    failing: bool,
    skipped: bool,
}

/// The results in a JUnit XML report.
pub fn parse(xml: &str) -> Result<TestResults, String> {
    let mut reader = Reader::from_str(xml);
    let mut out = TestResults::default();
    let mut current: Option<Case> = None;
    loop {
        match reader.read_event() {
            Err(e) => {
                return Err(format!(
                    "JUnit report, at byte {}: {e}",
                    reader.buffer_position()
                ));
            }
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => match e.name().as_ref() {
                b"testcase" => current = Some(case(&e)?),
                b"failure" | b"error" => mark(&mut current, true),
                b"skipped" => mark(&mut current, false),
                _ => {}
            },
            Ok(Event::Empty(e)) => match e.name().as_ref() {
                b"testcase" => record(&mut out, case(&e)?),
                b"failure" | b"error" => mark(&mut current, true),
                b"skipped" => mark(&mut current, false),
                _ => {}
            },
            Ok(Event::End(e)) if e.name().as_ref() == b"testcase" => {
                if let Some(c) = current.take() {
                    record(&mut out, c);
                }
            }
            Ok(_) => {}
        }
    }
    Ok(out)
}

fn mark(current: &mut Option<Case>, failing: bool) {
    if let Some(c) = current {
        if failing {
            c.failing = true;
        } else {
            c.skipped = true;
        }
    }
}

fn record(out: &mut TestResults, c: Case) {
    if c.failing {
        // A test that fails in teardown after passing is reported twice; failing wins.
        out.passed.remove(&c.id);
        out.failing.insert(c.id);
    } else if c.skipped {
        out.skipped.insert(c.id);
    } else if !out.failing.contains(&c.id) {
        out.passed.insert(c.id);
    }
}

fn case(e: &BytesStart) -> Result<Case, String> {
    let (mut file, mut classname, mut name) = (String::new(), String::new(), String::new());
    for a in e.attributes() {
        let a = a.map_err(|e| format!("JUnit report: {e}"))?;
        let value = a
            .unescape_value()
            .map_err(|e| format!("JUnit report: {e}"))?
            .into_owned();
        match a.key.as_ref() {
            b"file" => file = value,
            b"classname" => classname = value,
            b"name" => name = value,
            _ => {}
        }
    }
    Ok(Case {
        id: node_id(&file, &classname, &name),
        ..Case::default()
    })
}

/// pytest's node id: `file::Class::name`, from the module path in `classname`.
fn node_id(file: &str, classname: &str, name: &str) -> String {
    if file.is_empty() {
        return if classname.is_empty() {
            name.to_string()
        } else {
            format!("{classname}::{name}")
        };
    }
    let module = file.trim_end_matches(".py").replace(['/', '\\'], ".");
    let classes = classname
        .strip_prefix(&module)
        .map(|rest| rest.trim_start_matches('.'))
        .unwrap_or("");
    let mut id = file.to_string();
    for c in classes.split('.').filter(|c| !c.is_empty()) {
        id.push_str("::");
        id.push_str(c);
    }
    id.push_str("::");
    id.push_str(name);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_passed_failed_errored_and_skipped_tests_by_node_id() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
<testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py" line="3" time="0.001" />
<testcase classname="tests.test_a.TestBox" name="test_p[a&quot;b]" file="tests/test_a.py" line="9" time="0.001"><failure message="assert 1 == 2">E assert</failure></testcase>
<testcase classname="tests.test_a" name="test_skip" file="tests/test_a.py" line="12" time="0"><skipped type="pytest.skip" message="no">skip</skipped></testcase>
<testcase classname="" name="tests.test_b" time="0.0"><error message="collection failure">ImportError</error></testcase>
<testcase classname="tests.test_a" name="test_teardown" file="tests/test_a.py" line="20" time="0" />
<testcase classname="tests.test_a" name="test_teardown" file="tests/test_a.py" line="20" time="0"><error message="teardown">x</error></testcase>
</testsuite></testsuites>"#;
        let r = parse(xml).unwrap();
        assert_eq!(
            r.passed.iter().collect::<Vec<_>>(),
            ["tests/test_a.py::test_ok"]
        );
        assert_eq!(
            r.failing.iter().collect::<Vec<_>>(),
            [
                "tests.test_b",
                "tests/test_a.py::TestBox::test_p[a\"b]",
                "tests/test_a.py::test_teardown"
            ]
        );
        assert_eq!(
            r.skipped.iter().collect::<Vec<_>>(),
            ["tests/test_a.py::test_skip"]
        );
        assert!(parse("<testsuite><testcase name=").is_err());
    }
}
