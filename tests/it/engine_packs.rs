//! The built-in packs that need an outside service: deps_bump against a package index served
//! on 127.0.0.1, typing_pass against the scripted OpenAI-compatible server.

use crate::support::cli::Noctune;
use crate::support::pkg_index::PkgIndex;
use crate::support::repo::FixtureRepo;

#[test]
fn deps_bump_raises_pins_to_the_newest_non_major_versions_of_the_index() {
    let index = PkgIndex::start(&[
        ("requests", &["2.31.0", "2.32.3", "3.0.0"]),
        ("attrs", &["23.1.0", "23.2.0", "24.2.0"]),
    ]);
    let cfg = format!("[policy_packs.deps_bump.proposer]\nkind = \"deps_bump\"\nindex_url = \"{}\"\n", index.url());
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &cfg)]);
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "deps_bump");
    nt.wait_status(&run_id, "waiting_approval", 60);
    let approvals = nt.approvals(&run_id);
    assert_eq!(approvals.len(), 2, "{approvals:#?}");
    for a in &approvals {
        assert_eq!(a["status"], "pending", "deps_bump never auto-approves: {a:#}");
        assert!(a["risk_score"].as_u64().unwrap() >= 25, "dependency files are risky: {a:#}");
        nt.decide(&run_id, a["approval_id"].as_str().unwrap(), "approve", "bump").ok();
    }
    let done = nt.wait_status(&run_id, "done", 60);
    let branch = done["branch"].as_str().unwrap();
    let req = repo.read_at(branch, "requirements.txt");
    assert_eq!(req, "# runtime pins\nrequests==2.32.3\nattrs==23.2.0\n");
    let py = repo.read_at(branch, "pyproject.toml");
    assert!(py.contains("\"requests==2.32.3\",  # HTTP") && py.contains("\"attrs>=23.2.0\""), "{py}");
    assert!(!py.contains("3.0.0") && !py.contains("24.2.0"), "no major bumps unless allowed");
    assert_eq!(repo.branch_commits(branch).len(), 1, "per_pack grouping: one commit");
    // The user's files are untouched.
    assert!(repo.read("requirements.txt").contains("requests==2.31.0"));
}
