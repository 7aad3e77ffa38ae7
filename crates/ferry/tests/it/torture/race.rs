//! Two `ferry` processes writing one target at once, in seeded random
//! rounds, on every engine: two promoters of the same pair, a promoter and
//! a reviewer approving a review held in the target, a promoter and a
//! revert.
//!
//! Each round starts both processes a random delay apart (between zero and
//! the duration of one promotion), each with or without `--no-wait`, a
//! promoter with the whole plan, a `--where` part of it, or a plan saved
//! before the round (`promote --plan`). After the round:
//!
//! - every refusal has its documented exit code and message: 3 for a busy
//!   writer lock (only with `--no-wait`), a saved plan whose rows changed
//!   (only with `--plan`), rows held in an open review; nothing else;
//! - nothing interleaved: the target is byte for byte the result of one
//!   serial order of what succeeded, the order the journal records;
//! - nothing lost: every command that exited 0 with a promotion has it in
//!   the journal, live unless a revert of the round undid it, and its rows
//!   are in the target; every promotion of the round was reported by one;
//! - Ferry's own tables are consistent (`kill::check_ferry_tables`), the
//!   review is decided exactly when its approval exited 0;
//! - the next commands work: the round is undone (reverts, rejects) back to
//!   its start, which is checked byte for byte.
//!
//! `FERRY_RACE_ROUNDS` rounds per pair and engine (default 5);
//! `FERRY_TORTURE_SEED` replays a run.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use super::kill::{check_ferry_tables, dump, Setup};
use super::{ferry_command, say, Eng, Rng};
use crate::common::Output;

/// Items per environment: enough for a promotion to take a while, few
/// enough for CI.
const ROWS: usize = 60;

/// The part of the plan that some promoters take: the updates and deletes
/// of the items both sides held (`ROWS`), none of the new shelves and items,
/// so that reverting it never takes away a parent of the rest.
const PART: &str = "items:id <= 60";

const BUSY: &str = "another Ferry writer is working on `production`";
const STALE: &str = "the target changed since the plan was made";
const HELD: &str = "waiting in an open review";

fn rounds() -> usize {
    match std::env::var("FERRY_RACE_ROUNDS") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FERRY_RACE_ROUNDS={s:?} is not a number")),
        Err(_) => 5,
    }
}

/// One of the two racing processes.
struct Racer {
    args: Vec<String>,
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

fn start(s: &Setup, tag: &str, args: &[String]) -> Racer {
    let out = s.path().join(format!("{tag}.out"));
    let err = s.path().join(format!("{tag}.err"));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = ferry_command(s.path(), &argv, &s.vars)
        .stdout(std::fs::File::create(&out).expect("a log file"))
        .stderr(std::fs::File::create(&err).expect("a log file"))
        .spawn()
        .expect("start ferry");
    Racer {
        args: args.to_vec(),
        child,
        out,
        err,
    }
}

fn end(mut r: Racer, what: &str) -> Output {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = r.child.try_wait().expect("wait for ferry") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = r.child.kill();
            panic!("{what}: ferry {:?} did not end within 120 s", r.args);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = Output {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&r.out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&r.err).unwrap_or_default(),
    };
    assert!(
        !out.stderr.contains("panicked"),
        "{what}: ferry {:?} panicked:\n{}",
        r.args,
        out.stderr
    );
    out
}

/// Runs `a` and `b` at once: the first of them (a coin decides) starts,
/// the other follows after a random delay below `spread`.
fn race(s: &Setup, rng: &mut Rng, a: &[String], b: &[String], spread: Duration, what: &str) -> (Output, Output) {
    let delay = Duration::from_micros(rng.next() % (spread.as_micros() as u64 + 1));
    let a_first = rng.chance(50);
    let (first, second) = if a_first { (a, b) } else { (b, a) };
    let r1 = start(s, "first", first);
    std::thread::sleep(delay);
    let r2 = start(s, "second", second);
    let (o1, o2) = (end(r1, what), end(r2, what));
    if a_first {
        (o1, o2)
    } else {
        (o2, o1)
    }
}

/// The promotion a command reported (`--json`), if any.
fn reported(out: &Output) -> Option<String> {
    out.json()["promotion"].as_str().map(str::to_string)
}

/// The review a promotion into a review environment opened, if any.
fn opened(out: &Output) -> Option<String> {
    out.json()["review"].as_str().map(str::to_string)
}

/// Promotions and reverts after the baseline: (id, kind, reverted_by).
fn journal(s: &Setup) -> Vec<(String, String, Option<String>)> {
    journal_since(s, &[])
}

/// [`journal`] without the records `old` names (those of earlier rounds).
fn journal_since(s: &Setup, old: &[String]) -> Vec<(String, String, Option<String>)> {
    s.production
        .sql("SELECT id, kind, COALESCE(reverted_by, '-') FROM _ferry_promotions WHERE kind <> 'baseline' ORDER BY id")
        .lines()
        .map(|l| {
            let p: Vec<&str> = l.split('|').collect();
            let by = (p[2] != "-").then(|| p[2].to_string());
            (p[0].to_string(), p[1].to_string(), by)
        })
        .filter(|(id, _, _)| !old.contains(id))
        .collect()
}

/// Checks a refusal: exit 3 with one of `allowed` (message fragments).
#[track_caller]
fn refused(out: &Output, allowed: &[&str], who: &str, what: &str) {
    assert_eq!(
        out.code,
        3,
        "{what}: {who} exited {} (0 or 3 expected):\n{}",
        out.code,
        out.all()
    );
    assert!(
        allowed.iter().any(|m| out.all().contains(m)),
        "{what}: {who}'s refusal says none of {allowed:?}:\n{}",
        out.all()
    );
}

/// Runs `ferry ARGS` to its end, which must be exit 0.
#[track_caller]
fn run(s: &Setup, args: &[String]) -> Output {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    s.run_ok(&argv)
}

fn promote_args(part: bool, no_wait: bool) -> Vec<String> {
    let mut a: Vec<String> = ["promote", "staging", "production", "--yes", "--json"]
        .map(str::to_string)
        .to_vec();
    if part {
        a.extend(["--where".to_string(), PART.to_string()]);
    }
    if no_wait {
        a.push("--no-wait".into());
    }
    a
}

fn with_no_wait(mut args: Vec<String>, no_wait: bool) -> Vec<String> {
    if no_wait {
        args.push("--no-wait".into());
    }
    args
}

fn setup(eng: Eng, pair: &str, review: bool) -> Option<(Setup, Rng, u64, String)> {
    let test = format!("race::{pair}_{}", eng.name());
    let s = Setup::with_items(eng, &test, review, ROWS)?;
    let seed = super::seed();
    say(&format!(
        "torture {test}: seed {seed} (FERRY_TORTURE_SEED={seed} replays it), {} rounds",
        rounds()
    ));
    Some((s, Rng::new(seed), seed, test))
}

/// How a promoter of the two-promoter race runs.
#[derive(Clone, Copy, Debug)]
struct Promoter {
    part: bool,
    no_wait: bool,
    saved: bool,
}

fn two_promoters(eng: Eng) {
    let Some((s, mut rng, seed, test)) = setup(eng, "two_promoters", false) else {
        return;
    };
    let before = dump(&s.production);
    let t = Instant::now();
    let all = s.promote();
    let spread = t.elapsed();
    let after = dump(&s.production);
    s.revert(&all);
    let part = reported(&run(&s, &promote_args(true, false))).expect("the part promotes");
    let after_part = dump(&s.production);
    s.revert(&part);
    assert!(
        before != after_part && after_part != after,
        "{test}: three distinct states"
    );
    let mut tally = [0usize; 4]; // both promoted, one promoted, busy, stale
    for round in 0..rounds() {
        let what = format!("{test} round {round} (seed {seed})");
        let old: Vec<String> = journal(&s).into_iter().map(|(id, _, _)| id).collect();
        let racers: Vec<Promoter> = (0..2)
            .map(|_| Promoter {
                part: rng.chance(50),
                no_wait: rng.chance(30),
                saved: rng.chance(30),
            })
            .collect();
        let args: Vec<Vec<String>> = racers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if p.saved {
                    let file = format!("plan{i}.json");
                    let mut plan: Vec<&str> = vec!["plan", "staging", "production", "-o", &file];
                    if p.part {
                        plan.extend(["--where", PART]);
                    }
                    s.run_ok(&plan);
                    let args = ["promote", "staging", "production", "--plan", &file, "--yes", "--json"]
                        .map(str::to_string)
                        .to_vec();
                    with_no_wait(args, p.no_wait)
                } else {
                    promote_args(p.part, p.no_wait)
                }
            })
            .collect();
        let (a, b) = race(&s, &mut rng, &args[0], &args[1], spread, &what);
        let outs = [a, b];
        let what = format!("{what}, racers {racers:?}");
        let mut ids = Vec::new();
        for (i, (out, p)) in outs.iter().zip(&racers).enumerate() {
            let who = format!("promoter {i}");
            if out.code == 0 {
                if let Some(id) = reported(out) {
                    ids.push((id, p.part));
                }
                continue;
            }
            let mut allowed = Vec::new();
            if p.no_wait {
                allowed.push(BUSY);
            }
            if p.saved {
                allowed.push(STALE);
            }
            refused(out, &allowed, &who, &what);
            tally[if out.all().contains(BUSY) { 2 } else { 3 }] += 1;
        }
        assert!(
            !ids.is_empty(),
            "{what}: nobody promoted:\n{}\n{}",
            outs[0].all(),
            outs[1].all()
        );
        tally[2 - ids.len()] += 1;
        // The serial order the journal records: the target is its result.
        let live = journal_since(&s, &old);
        let mut reported_ids: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
        reported_ids.sort_unstable();
        let recorded: Vec<&str> = live.iter().map(|(id, _, _)| id.as_str()).collect();
        assert_eq!(
            recorded, reported_ids,
            "{what}: the journal holds exactly the promotions reported"
        );
        assert!(
            live.iter().all(|(_, kind, by)| kind == "promote" && by.is_none()),
            "{what}: {live:?}"
        );
        let expected = if ids.iter().any(|(_, part)| !part) {
            &after
        } else {
            &after_part
        };
        assert_eq!(
            &dump(&s.production),
            expected,
            "{what}: the target is not one serial order's result"
        );
        for (out, p) in outs.iter().zip(&racers) {
            // "Nothing to do" only when the rows it would write were written.
            if out.code == 0 && reported(out).is_none() && !p.part {
                assert_eq!(
                    expected,
                    &after,
                    "{what}: a whole plan found nothing to do:\n{}",
                    out.all()
                );
            }
        }
        if ids.len() == 2 {
            // The second in the journal's order promoted only what the
            // first left: a whole plan after a part, and nothing else (a
            // part, or anything after a whole plan, has nothing left to do).
            ids.sort();
            assert!(ids[0].1 && !ids[1].1, "{what}: promoted in this order: {ids:?}");
        }
        check_ferry_tables(&s.production, &what);
        // Undo the round, newest first: the next commands work.
        for (id, _) in ids.iter().rev() {
            s.revert(id);
        }
        assert_eq!(dump(&s.production), before, "{what}: undoing the round");
    }
    say(&format!(
        "torture {test}: {} rounds (seed {seed}): {} with both promoting, {} with one; refusals: {} busy (--no-wait), {} stale (--plan)",
        rounds(),
        tally[0],
        tally[1],
        tally[2],
        tally[3]
    ));
}

fn promoter_and_reviewer(eng: Eng) {
    let Some((s, mut rng, seed, test)) = setup(eng, "promoter_reviewer", true) else {
        return;
    };
    let before = dump(&s.production);
    let t = Instant::now();
    let review = opened(&run(&s, &promote_args(true, false))).expect("a review");
    let spread = t.elapsed();
    let approved = reported(&s.run_ok(&["review", "approve", &review, "--yes", "--json"])).expect("written");
    let after_part = dump(&s.production);
    s.revert(&approved);
    assert_eq!(dump(&s.production), before, "{test}: the reference came back");
    let mut tally = [0usize; 3]; // approval then a review of the rest, held by the review, busy
    for round in 0..rounds() {
        let what = format!("{test} round {round} (seed {seed})");
        let old: Vec<String> = journal(&s).into_iter().map(|(id, _, _)| id).collect();
        let review = opened(&run(&s, &promote_args(true, false))).expect("a review of the part");
        let (approve_no_wait, promote_no_wait) = (rng.chance(30), rng.chance(30));
        let approve = with_no_wait(
            ["review", "approve", &review, "--yes", "--json"]
                .map(str::to_string)
                .to_vec(),
            approve_no_wait,
        );
        let promote = promote_args(false, promote_no_wait);
        let (a, p) = race(&s, &mut rng, &approve, &promote, spread, &what);
        let what = format!("{what}, --no-wait: approve {approve_no_wait}, promote {promote_no_wait}");
        let approval = if a.code == 0 {
            Some(reported(&a).unwrap_or_else(|| panic!("{what}: the approval wrote nothing:\n{}", a.all())))
        } else {
            assert!(approve_no_wait, "{what}: the approval failed:\n{}", a.all());
            refused(&a, &[BUSY], "the approval", &what);
            tally[2] += 1;
            None
        };
        let second = if p.code == 0 {
            // The promotion came after the approval (else the review's
            // rows would have held it): a review of the rest.
            assert!(approval.is_some(), "{what}: promoted past an open review:\n{}", p.all());
            assert!(reported(&p).is_none(), "{what}: a review environment written directly");
            tally[0] += 1;
            Some(opened(&p).unwrap_or_else(|| panic!("{what}: no review of the rest:\n{}", p.all())))
        } else {
            let mut allowed = vec![HELD];
            if promote_no_wait {
                allowed.push(BUSY);
            }
            refused(&p, &allowed, "the promoter", &what);
            tally[if p.all().contains(HELD) { 1 } else { 2 }] += 1;
            None
        };
        let status = s.review_status(&review);
        let live = journal_since(&s, &old);
        match &approval {
            Some(id) => {
                assert_eq!(status, "approved", "{what}: approved, yet the review is {status}");
                assert_eq!(
                    live.iter().map(|(i, _, _)| i.as_str()).collect::<Vec<_>>(),
                    vec![id.as_str()],
                    "{what}: the journal holds the approval alone"
                );
                assert_eq!(dump(&s.production), after_part, "{what}: the approval's rows");
            }
            None => {
                assert_eq!(status, "open", "{what}: not approved, yet the review is {status}");
                assert!(live.is_empty(), "{what}: nothing approved, yet {live:?}");
                assert_eq!(dump(&s.production), before, "{what}: the target changed");
            }
        }
        check_ferry_tables(&s.production, &what);
        if let Some(r) = &second {
            assert_eq!(s.review_status(r), "open", "{what}: the review of the rest");
            s.run_ok(&["review", "reject", r, "--yes"]);
        }
        match &approval {
            Some(id) => s.revert(id),
            None => {
                s.run_ok(&["review", "reject", &review, "--yes"]);
            }
        }
        assert_eq!(dump(&s.production), before, "{what}: undoing the round");
        let open = s
            .production
            .scalar("SELECT count(*) FROM _ferry_reviews WHERE status = 'open'");
        assert_eq!(open, "0", "{what}: reviews left open");
    }
    say(&format!(
        "torture {test}: {} rounds (seed {seed}): {} promotions after the approval (a review of the rest); refusals: {} promotions held by the open review, {} busy (--no-wait)",
        rounds(),
        tally[0],
        tally[1],
        tally[2]
    ));
}

fn promoter_and_revert(eng: Eng) {
    let Some((s, mut rng, seed, test)) = setup(eng, "promoter_revert", false) else {
        return;
    };
    let before = dump(&s.production);
    let t = Instant::now();
    let mut part = reported(&run(&s, &promote_args(true, false))).expect("the part promotes");
    let spread = t.elapsed();
    let start = dump(&s.production);
    // The two serial orders: revert then promote, promote then revert.
    s.revert(&part);
    let all = s.promote();
    let revert_first = dump(&s.production);
    s.revert(&all);
    part = reported(&run(&s, &promote_args(true, false))).expect("the part promotes");
    let all = s.promote();
    s.revert(&part);
    let promote_first = dump(&s.production);
    s.revert(&all);
    assert_eq!(dump(&s.production), before, "{test}: the reference came back");
    part = reported(&run(&s, &promote_args(true, false))).expect("the part promotes");
    assert_eq!(dump(&s.production), start, "{test}: the start");
    assert_ne!(revert_first, promote_first, "{test}: the two orders differ");
    let mut tally = [0usize; 4]; // revert first, promote first, revert busy, promote busy
    for round in 0..rounds() {
        let what = format!("{test} round {round} (seed {seed})");
        let old: Vec<String> = journal(&s).into_iter().map(|(id, _, _)| id).collect();
        let (revert_no_wait, promote_no_wait) = (rng.chance(30), rng.chance(30));
        let revert = with_no_wait(
            ["revert", &part, "--yes", "--json"].map(str::to_string).to_vec(),
            revert_no_wait,
        );
        let promote = promote_args(false, promote_no_wait);
        let (r, p) = race(&s, &mut rng, &revert, &promote, spread, &what);
        let what = format!("{what}, --no-wait: revert {revert_no_wait}, promote {promote_no_wait}");
        let reverted = if r.code == 0 {
            Some(reported(&r).unwrap_or_else(|| panic!("{what}: the revert reported nothing:\n{}", r.all())))
        } else {
            assert!(revert_no_wait, "{what}: the revert failed:\n{}", r.all());
            refused(&r, &[BUSY], "the revert", &what);
            tally[2] += 1;
            None
        };
        let promoted = if p.code == 0 {
            Some(reported(&p).unwrap_or_else(|| panic!("{what}: the promotion had nothing to do:\n{}", p.all())))
        } else {
            assert!(promote_no_wait, "{what}: the promotion failed:\n{}", p.all());
            refused(&p, &[BUSY], "the promoter", &what);
            tally[3] += 1;
            None
        };
        let live = journal(&s);
        let new = journal_since(&s, &old);
        let find = |id: &str| live.iter().find(|(i, _, _)| i == id).cloned();
        let (_, _, by) = find(&part).unwrap_or_else(|| panic!("{what}: the reverted promotion is gone"));
        assert_eq!(by, reverted, "{what}: reverted_by of {part}");
        if let Some(id) = &reverted {
            assert_eq!(
                find(id).map(|(_, k, b)| (k, b)),
                Some(("revert".to_string(), None)),
                "{what}"
            );
        }
        if let Some(id) = &promoted {
            assert_eq!(
                find(id).map(|(_, k, b)| (k, b)),
                Some(("promote".to_string(), None)),
                "{what}"
            );
        }
        assert_eq!(
            new.len(),
            usize::from(reverted.is_some()) + usize::from(promoted.is_some()),
            "{what}: the journal holds what was reported: {new:?}"
        );
        let expected = match (&reverted, &promoted) {
            (Some(r), Some(p)) if r < p => {
                tally[0] += 1;
                &revert_first
            }
            (Some(_), Some(_)) => {
                tally[1] += 1;
                &promote_first
            }
            (Some(_), None) => &before,
            (None, Some(_)) => &revert_first,
            (None, None) => panic!("{what}: neither ran:\n{}\n{}", r.all(), p.all()),
        };
        assert_eq!(
            &dump(&s.production),
            expected,
            "{what}: the target is not the journal's serial order's result"
        );
        check_ferry_tables(&s.production, &what);
        // Back to the start: the part promoted, live.
        if let Some(id) = &promoted {
            s.revert(id);
        }
        if reverted.is_some() {
            assert_eq!(dump(&s.production), before, "{what}: undoing the round");
            part = reported(&run(&s, &promote_args(true, false))).expect("the part promotes");
        }
        assert_eq!(dump(&s.production), start, "{what}: back to the start");
    }
    say(&format!(
        "torture {test}: {} rounds (seed {seed}): revert first {}, promotion first {}; refusals: revert busy {}, promotion busy {} (--no-wait)",
        rounds(),
        tally[0],
        tally[1],
        tally[2],
        tally[3]
    ));
}

#[test]
fn two_promoters_sqlite() {
    two_promoters(Eng::Sqlite);
}

#[test]
fn two_promoters_postgres() {
    two_promoters(Eng::Postgres);
}

#[test]
fn two_promoters_mariadb() {
    two_promoters(Eng::Mysql);
}

#[test]
fn promoter_and_reviewer_sqlite() {
    promoter_and_reviewer(Eng::Sqlite);
}

#[test]
fn promoter_and_reviewer_postgres() {
    promoter_and_reviewer(Eng::Postgres);
}

#[test]
fn promoter_and_reviewer_mariadb() {
    promoter_and_reviewer(Eng::Mysql);
}

#[test]
fn promoter_and_revert_sqlite() {
    promoter_and_revert(Eng::Sqlite);
}

#[test]
fn promoter_and_revert_postgres() {
    promoter_and_revert(Eng::Postgres);
}

#[test]
fn promoter_and_revert_mariadb() {
    promoter_and_revert(Eng::Mysql);
}
