//! The notebooks, run headlessly through the real evcxr kernel; the homework's
//! student version, generated from the solution; grading of the kept
//! submissions, with the project's grader and with the real nbgrader.
//!
//! These need set-up's venv (Jupyter, nbclient, nbgrader) and the registered
//! Rust kernel: `cargo test` alone skips them (ignored, with the reason);
//! `scripts/test` runs them.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::{python, repo_root};

/// One kernel at a time: the machine has two cores.
static KERNEL: Mutex<()> = Mutex::new(());

fn script(name: &str) -> Command {
    let mut c = Command::new(python());
    c.arg(repo_root().join("scripts").join(name))
        .current_dir(repo_root());
    c
}

fn run(mut c: Command) -> String {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e} (run scripts/setup)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{c:?} failed:\n{text}");
    text
}

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
#[ignore = "needs set-up's Jupyter and Rust kernel (scripts/test runs it)"]
fn every_notebook_runs_with_its_figures_and_the_labs_scores() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    // --check fails on an error output, a missing figure (the expected count
    // per notebook), or correct-class scores off the lab's by more than 0.02.
    let mut c = script("run_notebooks.py");
    c.arg("--check");
    let out = run(c);
    for nb in [
        "saliency_lab.ipynb: ok",
        "homework_smoothgrad.ipynb: ok",
        "homework_smoothgrad_student.ipynb: ok",
        "trust_lab.ipynb: ok",
        "homework_deletion.ipynb: ok",
        "homework_deletion_student.ipynb: ok",
        "network_visualisation.ipynb: ok",
        "homework_fooling.ipynb: ok",
        "homework_fooling_student.ipynb: ok",
        "propagation_lab.ipynb: ok",
    ] {
        assert!(out.contains(nb), "{out}");
    }
    assert!(repo_root().join("report/index.html").is_file());
}

#[test]
#[ignore = "needs set-up's Jupyter and Rust kernel (scripts/test runs it)"]
fn the_homeworks_hints_run_as_written() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    for (nb, blocks) in [
        ("homework_smoothgrad_student", 2),
        ("homework_deletion_student", 1),
        ("homework_fooling_student", 2),
    ] {
        let mut c = script("run_notebooks.py");
        c.arg("--hints")
            .arg(repo_root().join(format!("notebooks/{nb}.ipynb")));
        let out = run(c);
        assert!(
            out.contains(&format!("{blocks} hint block(s) run, no errors")),
            "{out}"
        );
    }
}

#[test]
#[ignore = "needs set-up's venv (scripts/test runs it)"]
fn student_version_is_generated_from_the_solution() {
    let mut c = script("make_student.py");
    c.arg("--check");
    run(c);
    let student =
        std::fs::read_to_string(repo_root().join("notebooks/homework_smoothgrad_student.ipynb"))
            .unwrap();
    assert!(!student.contains("BEGIN SOLUTION") && !student.contains("HIDDEN TESTS"));
    assert!(
        !student.contains("&vec![target; n]"),
        "no solution code left"
    );
    // One stub per answer cell (escaped newline: the JSON text of the source).
    assert_eq!(student.matches("todo!()\\n").count(), 3);
    // The crate's SmoothGrad only after the graded tasks, under its heading.
    let after = student
        .find("After you submit")
        .expect("the after-you-submit heading");
    for answer in ["smoothgrad(&model", "NoiseSamples::new"] {
        let at = student
            .find(answer)
            .unwrap_or_else(|| panic!("{answer} is gone"));
        assert!(at > after, "{answer} shows before the graded tasks end");
    }
    let last_test = student.rfind("\"grade_id\": \"test_").unwrap();
    assert!(
        after > last_test,
        "the after-you-submit part comes after the last test"
    );
    let deletion =
        std::fs::read_to_string(repo_root().join("notebooks/homework_deletion_student.ipynb"))
            .unwrap();
    assert!(!deletion.contains("BEGIN SOLUTION") && !deletion.contains("HIDDEN TESTS"));
    assert!(!deletion
        .contains("order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));\\n    let steps"));
    assert_eq!(deletion.matches("todo!()\\n").count(), 3);
}

/// `hostile_wire_forge`'s expected row: the shape test's mark, every
/// other test failed as tampering. Its forging thread floods the kernel's
/// output (1000 lines a second, a third of them 8 KB), which can hold a
/// cell past its limit under load: then the kernel is interrupted and loses
/// its variables, the row says timeout, and test_shape is lost too when the
/// cell held was its own or an earlier one (CI at stop 33: held after
/// test_shape, which kept its mark). Either way nothing is gained.
fn wire_forge_expected(
    rows: &[HashMap<String, String>],
) -> (&'static str, &'static str, &'static [&'static str]) {
    let held_before_shape = rows.iter().any(|r| {
        r["student"] == "hostile_wire_forge" && r["status"] == "timeout" && r["test_shape"] == "0"
    });
    if held_before_shape {
        ("hostile_wire_forge", "0", &TESTS)
    } else {
        ("hostile_wire_forge", "1", EVERY_TEST_BUT_SHAPE)
    }
}

/// Each student's row: the total, and a zero exactly for the tests it
/// should fail. `expected`: (student, total, the tests it fails).
fn check_grades(
    rows: &[HashMap<String, String>],
    tests: &[&str],
    expected: &[(&str, &str, &[&str])],
    out: &str,
) {
    assert_eq!(rows.len(), expected.len(), "{out}");
    for (student, total, fails) in expected {
        let row = rows
            .iter()
            .find(|r| r["student"] == *student)
            .unwrap_or_else(|| panic!("no row for {student}"));
        assert_eq!(row["total"], *total, "{student}: {row:?}");
        for t in tests {
            assert_eq!(row[*t] == "0", fails.contains(t), "{student} {t}: {row:?}");
        }
    }
}

/// The rows of a CSV file as a spreadsheet reads them (RFC 4180: quoted
/// fields with doubled quotes, commas and line breaks inside).
fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    let header = records.remove(0);
    records
        .into_iter()
        .map(|r| header.iter().cloned().zip(r).collect())
        .collect()
}

/// The same walls on the path an instructor without root takes (a user
/// namespace for the collector and the sandbox, prlimit without cgroups,
/// one notebook at a time): as root, `scripts/tests/grade_as_user.py`
/// grades as a uid of its own, with no name, group or capability; as an
/// ordinary user, grade.py itself. The hostile submissions keep the marks
/// they get as root, nothing escapes, and no process of the user's is left.
#[test]
#[ignore = "needs set-up's Jupyter and Rust kernel (scripts/test runs it)"]
fn grading_as_an_ordinary_user_gives_the_same_marks() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("grading-as-user");
    let subs = dir.join("submissions");
    std::fs::create_dir_all(&subs).unwrap();
    let kept = [
        "correct",
        "hostile_escape",
        "hostile_bombs",
        "hostile_wire_forge",
    ];
    for s in kept {
        let name = format!("{s}.ipynb");
        std::fs::copy(
            repo_root().join("crate/tests/submissions").join(&name),
            subs.join(&name),
        )
        .unwrap();
    }
    let id = Command::new("id").arg("-u").output().expect("id -u");
    let as_root = String::from_utf8_lossy(&id.stdout).trim() == "0";
    let results = dir.join("out");
    let outside = Outside::watch();
    let out = if as_root {
        let mut c = script("tests/grade_as_user.py");
        c.arg(&subs).arg(&results);
        run(c)
    } else {
        let mut c = script("grade.py");
        c.arg(&subs)
            .arg("--out")
            .arg(results.join("grades.csv"))
            .arg("--feedback")
            .arg(results.join("feedback"));
        run(c)
    };
    outside.check();
    assert!(out.contains("bubblewrap; a user namespace"), "{out}");
    if as_root {
        assert!(out.contains("grading as uid 61017"), "{out}");
        // (grade.py's last kernels may still be exiting as it returns.)
        let ps = || {
            let o = Command::new("ps")
                .args(["-o", "pid,etime,args", "--no-headers", "-u", "61017"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        eprintln!("the user's processes as grade.py returned: [{}]", ps());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !ps().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert!(
            ps().is_empty(),
            "the user's processes outlived the run: {}",
            ps()
        );
    }
    let rows = read_csv(&results.join("grades.csv"));
    let expected = [
        ("correct", "7", &[][..]),
        ("hostile_escape", "7", &[]),
        ("hostile_bombs", "7", &[]),
        wire_forge_expected(&rows),
    ];
    check_grades(&rows, &TESTS, &expected, &out);
}

/// What a hostile submission (`hostile_escape`) tries to reach outside its
/// sandbox, looked at from outside: a TCP port on 127.0.0.1 it connects to,
/// files it would write, a process it leaves behind.
struct Outside {
    connections_before: usize,
    canaries: Vec<PathBuf>,
    guarded: Vec<(PathBuf, Vec<u8>)>,
}

/// Connections to 127.0.0.1:47123, counted by one listener for the whole
/// test binary (two tests watch, one after the other).
static CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Outside {
    fn watch() -> Self {
        static LISTENING: std::sync::Once = std::sync::Once::new();
        LISTENING.call_once(|| {
            let listener = std::net::TcpListener::bind("127.0.0.1:47123")
                .expect("port 47123 on 127.0.0.1, which the hostile submission tries, is taken");
            std::thread::spawn(move || {
                for _ in listener.incoming() {
                    CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        });
        let connections_before = CONNECTIONS.load(std::sync::atomic::Ordering::SeqCst);
        let home = saliency_lab::assets::home();
        let root = repo_root();
        let canaries: Vec<PathBuf> = [
            root.join("saliency-escape-canary"),
            root.join("crate/saliency-escape-canary"),
            home.join("saliency-escape-canary"),
            home.join("grading/saliency-escape-canary"),
            "/tmp/saliency-escape-canary".into(),
            "/var/tmp/saliency-escape-canary".into(),
            "/root/saliency-escape-canary".into(),
            "/dev/shm/saliency-escape-canary".into(),
        ]
        .into();
        for c in &canaries {
            let _ = std::fs::remove_file(c);
        }
        let guarded = [root.join("crate/src/lib.rs"), root.join("Cargo.toml")]
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        Outside {
            connections_before,
            canaries,
            guarded,
        }
    }

    fn check(&self) {
        assert_eq!(
            CONNECTIONS.load(std::sync::atomic::Ordering::SeqCst) - self.connections_before,
            0,
            "a graded notebook connected to 127.0.0.1:47123 outside its sandbox"
        );
        for c in &self.canaries {
            assert!(!c.exists(), "a graded notebook wrote {}", c.display());
        }
        for (p, bytes) in &self.guarded {
            assert!(
                std::fs::read(p).unwrap() == *bytes,
                "a graded notebook changed {}",
                p.display()
            );
        }
        let lingering = Command::new("pgrep")
            .args(["-f", "sleep 600.5"])
            .output()
            .expect("pgrep");
        assert!(
            lingering.stdout.is_empty(),
            "a graded notebook's process outlived it: pids {}",
            String::from_utf8_lossy(&lingering.stdout)
        );
    }
}

/// The SmoothGrad homework's tests.
const TESTS: [&str; 6] = [
    "test_shape",
    "test_noise_zero",
    "test_reference",
    "test_noise_scale",
    "test_map",
    "test_figure",
];
const EVERY_TEST_BUT_SHAPE: &[&str] = &[
    "test_noise_zero",
    "test_reference",
    "test_noise_scale",
    "test_map",
    "test_figure",
];

#[test]
#[ignore = "needs set-up's Jupyter and Rust kernel (scripts/test runs it)"]
fn grading_gives_each_kept_submission_the_marks_it_should() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("grading");
    let outside = Outside::watch();
    let folder = submissions_with_odd_entries(&dir);
    let mut c = script("grade.py");
    c.arg(&folder)
        .arg("--out")
        .arg(dir.join("grades.csv"))
        .arg("--feedback")
        .arg(dir.join("feedback"));
    let out = run(c);
    outside.check();
    let rows = read_csv(&dir.join("grades.csv"));
    // The panicking and the endless submission fail the same tests.
    const EVERY_TEST_BUT_MAP: &[&str] = &[
        "test_shape",
        "test_noise_zero",
        "test_reference",
        "test_noise_scale",
        "test_figure",
    ];
    // A smooth_grad of zeros passes the shape and the map only (the figure's
    // third row must show its SmoothGrad: zeros show nothing).
    const ZEROS_FAIL: &[&str] = &[
        "test_noise_zero",
        "test_reference",
        "test_noise_scale",
        "test_figure",
    ];
    // (student, total, the tests it fails)
    let expected: [(&str, &str, &[&str]); 35] = [
        // Right, in several styles: full marks.
        ("correct", "7", &[]),
        ("one_at_a_time", "7", &[]),
        ("one_batch", "7", &[]),
        ("chunked", "7", &[]),
        ("other_seed", "7", &[]),
        ("running_mean", "7", &[]),
        // Wrong in the typical ways: each loses what it should.
        ("one_sample", "4", &["test_reference", "test_figure"]),
        (
            "blur_average",
            "3",
            &["test_noise_zero", "test_reference", "test_noise_scale"],
        ),
        (
            "unscaled_noise",
            "4",
            &["test_reference", "test_noise_scale"],
        ),
        ("batch_range", "6", &["test_noise_scale"]),
        ("no_abs", "6", &["test_map"]),
        ("no_channel_max", "5", &["test_map", "test_figure"]),
        ("two_rows_figure", "6", &["test_figure"]),
        ("panics", "1", EVERY_TEST_BUT_MAP),
        ("endless", "1", EVERY_TEST_BUT_MAP),
        ("not_a_notebook", "0", &TESTS),
        // The student version with its answer cells emptied: nothing of
        // another student's is left to pass its tests.
        ("empty_answers", "0", &TESTS),
        // Hostile: every verdict and value forged after the tests ran, or
        // values handed in before them; the crate's own SmoothGrad called
        // directly or through the method registry; the hidden tests' names
        // shadowed, assert! disabled and the panic hook silenced, with a
        // one-sample answer. Each gets what its own answer earns.
        ("hostile_forge_after", "2", ZEROS_FAIL),
        ("hostile_forge_before", "2", ZEROS_FAIL),
        // The grader's wire format printed by the student's code, before the
        // tests and from a thread during them, with ids made to break files
        // and feedback: the tests it names fail as tampering (test_map's
        // too), nothing stops.
        wire_forge_expected(&rows),
        // After its tests, goes after the process that reports for it
        // (every process it sees, pidfd_getfd, ptrace, kill -9 -1) and prints
        // a score: it finds only its own sandbox.
        ("hostile_collector", "7", &[]),
        // After its tests, stops its own kernel (SIGSTOP to every process
        // it can signal): the cell times out, the marks stand.
        ("hostile_stop", "7", &[]),
        // A 3 x 5 figure whose third row is the vanilla gradient again.
        ("vanilla_figure", "6", &["test_figure"]),
        ("hostile_crate_smoothgrad", "1", EVERY_TEST_BUT_MAP),
        ("hostile_crate_tunnel", "1", EVERY_TEST_BUT_MAP),
        ("hostile_shadow", "4", &["test_reference", "test_figure"]),
        // Tried to read the hidden tests and other notebooks, write outside
        // its scratch folder, connect out and leave a process behind, and
        // answers zeros if any of it worked; bombs (memory, output, a
        // spinning thread, processes) after its tests.
        ("hostile_escape", "7", &[]),
        ("hostile_bombs", "7", &[]),
        // What an archive unpacked into the submissions folder can hold
        // (submissions_with_odd_entries): a row each, the run goes on.
        ("fifo", "0", &TESTS),
        (LONG_SHOWN, "0", &TESTS),
        ("caf\u{fffd}", "0", &TESTS),
        ("'=HYPERLINK(\"evil.example\",\"x\")", "0", &TESTS),
        ("evil?[2K?fake: 7 of 7", "0", &TESTS),
        ("alice (alice.ipynb)", "0", &TESTS),
        ("alice (alice/)", "0", &TESTS),
    ];
    check_grades(&rows, &TESTS, &expected, &out);
    let status = |s: &str| rows.iter().find(|r| r["student"] == s).unwrap()["status"].clone();
    assert_eq!(status("endless"), "timeout");
    assert_eq!(status("not_a_notebook"), "unreadable");
    assert_eq!(status("empty_answers"), "ok");
    let fb = |s: &str| std::fs::read_to_string(dir.join(format!("feedback/{s}.txt"))).unwrap();
    let unscaled = fb("unscaled_noise");
    assert!(
        unscaled.contains("Score: 4 / 7") && unscaled.contains("not 15% of that image's own range"),
        "{unscaled}"
    );
    assert!(fb("batch_range").contains("image 0: the noise is not 15%"));
    assert!(fb("two_rows_figure").contains("a grid of 3 rows of 5 panels"));
    for s in ["hostile_crate_smoothgrad", "hostile_crate_tunnel"] {
        assert!(
            fb(s).contains("the crate's own answer to this homework, which grading withholds"),
            "{s}: {}",
            fb(s)
        );
    }
    // (The forging thread's output can also hold a cell past its limit:
    // then the row says timeout, and its feedback still names the tampering.)
    assert_eq!(status("hostile_forge_before"), "tampering");
    assert!(
        ["tampering", "timeout"].contains(&status("hostile_wire_forge").as_str()),
        "hostile_wire_forge: {}",
        status("hostile_wire_forge")
    );
    for s in ["hostile_wire_forge", "hostile_forge_before"] {
        assert!(fb(s).contains("tampering"), "{s}: {}", fb(s));
    }
    // (Its attack can leave the kernel stopped by ptrace after its tests:
    // the cell then times out, the row says so, and the marks stand.)
    assert!(
        ["ok", "timeout"].contains(&status("hostile_collector").as_str()),
        "hostile_collector: {}",
        status("hostile_collector")
    );
    assert_eq!(status("hostile_stop"), "timeout");
    for s in ["hostile_wire_forge", "hostile_collector", "hostile_stop"] {
        assert!(!fb(s).contains("regraded by hand"), "{s}: {}", fb(s));
    }
    assert!(
        fb("vanilla_figure").contains("not your smooth_grad's map"),
        "{}",
        fb("vanilla_figure")
    );
    assert_eq!(status("fifo"), "unreadable");
    assert!(
        fb("fifo").contains("a FIFO, not a notebook file"),
        "{}",
        fb("fifo")
    );
    // One feedback text and page per row, none written over another; no
    // terminal escape in the progress lines.
    let files: Vec<String> = std::fs::read_dir(dir.join("feedback"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for ext in [".txt", ".html"] {
        let n = files.iter().filter(|f| f.ends_with(ext)).count();
        assert_eq!(n, rows.len(), "feedback files {ext}: {files:?}");
    }
    check_report(&dir, &rows, &TESTS);
    // A feedback page: the verdicts and the student's own figure, never
    // the hidden tests' code.
    let page = std::fs::read_to_string(dir.join("feedback/correct.html")).unwrap();
    assert!(page.contains("Score: <b>7 / 7</b>") && page.contains("data:image/png;base64,"));
    for hidden in ["BEGIN HIDDEN", "normal_cdf", "assert", "hand_in"] {
        assert!(
            !page.contains(hidden) && !fb("no_abs").contains(hidden),
            "{hidden}"
        );
    }
    assert!(!page.contains("<script"));
    assert!(
        !out.contains('\u{1b}'),
        "a terminal escape in grade.py's output: {out:?}"
    );
    // A line per notebook, with what is left.
    assert!(out.contains("35/35 graded, 0 left"), "{out}");
}

/// The class report beside the CSV: each test's pass rate as the CSV has
/// it, every student, the histogram drawn; the near-identical answers
/// listed (the kept submissions share their answers where one was made
/// from another: `hostile_collector` is `correct` with a cell added) and no
/// pair of the independent honest ones.
fn check_report(dir: &Path, rows: &[HashMap<String, String>], tests: &[&str]) {
    let page = std::fs::read_to_string(dir.join("report/index.html")).unwrap();
    let graded: Vec<_> = rows
        .iter()
        .filter(|r| r["status"] != "unreadable")
        .collect();
    for t in tests {
        let passed = graded.iter().filter(|r| r[*t] != "0").count();
        let row = format!(
            "data-test=\"{t}\" data-passed=\"{passed}\" data-graded=\"{}\"",
            graded.len()
        );
        assert!(page.contains(&row), "{row} not in the report");
    }
    assert_eq!(page.matches("data-student=").count(), rows.len());
    assert!(page.contains("<img id=\"histogram\""), "no histogram");
    assert!(!page.contains("<script"), "a script in the report");
    let similar = &page[page
        .find("<table id=\"similar\"")
        .expect("the similar pairs")..];
    let similar = &similar[..similar.find("</table>").unwrap()];
    assert!(
        similar.contains("<td>correct</td><td>hostile_collector</td>"),
        "{similar}"
    );
    let honest = [
        "correct",
        "one_at_a_time",
        "one_batch",
        "chunked",
        "other_seed",
        "running_mean",
    ];
    for a in honest {
        for b in honest {
            assert!(
                !similar.contains(&format!("<td>{a}</td><td>{b}</td>")),
                "{a} and {b} listed as near-identical"
            );
        }
    }
}

/// The kept submissions, copied, and beside them what an archive of
/// students' files unpacked into the folder can hold: a FIFO where a
/// notebook goes (`tar x` makes one; opened, it would block the run), a
/// folder name of 250 bytes, a name that is not UTF-8, one that is a
/// spreadsheet formula, one with terminal escapes, and `alice.ipynb` beside
/// `alice/`. None of them is a notebook.
fn submissions_with_odd_entries(dir: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let folder = dir.join("submissions");
    std::fs::create_dir_all(&folder).unwrap();
    for e in std::fs::read_dir(repo_root().join("crate/tests/submissions")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), folder.join(e.file_name())).unwrap();
    }
    let status = Command::new("mkfifo")
        .arg(folder.join("fifo.ipynb"))
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let long = folder.join("a".repeat(250));
    std::fs::create_dir(&long).unwrap();
    let odd: [&[u8]; 4] = [
        b"caf\xe9.ipynb",
        b"=HYPERLINK(\"evil.example\",\"x\").ipynb",
        b"evil\x1b[2K\rfake: 7 of 7.ipynb",
        b"alice.ipynb",
    ];
    let not_json = "{ this is not a notebook";
    std::fs::write(long.join("homework.ipynb"), not_json).unwrap();
    for name in odd {
        std::fs::write(folder.join(std::ffi::OsStr::from_bytes(name)), not_json).unwrap();
    }
    std::fs::create_dir(folder.join("alice")).unwrap();
    std::fs::write(folder.join("alice/alice.ipynb"), not_json).unwrap();
    folder
}

/// How grade.py shows the 250-byte folder name: cut to its 80 characters.
const LONG_SHOWN: &str =
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u{2026}";

#[test]
#[ignore = "needs set-up's Jupyter and Rust kernel (scripts/test runs it)"]
fn grading_the_deletion_homework() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("grading-deletion");
    let mut c = script("grade.py");
    c.arg(repo_root().join("crate/tests/submissions_deletion"))
        .arg("--master")
        .arg(repo_root().join("notebooks/homework_deletion.ipynb"))
        .arg("--out")
        .arg(dir.join("grades.csv"))
        .arg("--feedback")
        .arg(dir.join("feedback"));
    let out = run(c);
    let rows = read_csv(&dir.join("grades.csv"));
    const TESTS: [&str; 5] = [
        "test_curve_shape",
        "test_curve_toy",
        "test_curve_reference",
        "test_auc",
        "test_compare",
    ];
    let expected: [(&str, &str, &[&str]); 10] = [
        ("correct", "5", &[]),
        ("batched", "5", &[]),
        (
            "ascending",
            "2",
            &["test_curve_toy", "test_curve_reference", "test_compare"],
        ),
        (
            "logits",
            "1",
            &[
                "test_curve_shape",
                "test_curve_toy",
                "test_curve_reference",
                "test_compare",
            ],
        ),
        // The image's own mean as the substrate: on the real images that mean
        // is near the normalised zero, so the curve on one image stays within
        // the tolerance; the toy model and the comparison's AUC see it.
        ("mean_substrate", "3", &["test_curve_toy", "test_compare"]),
        (
            "record_after",
            "1",
            &[
                "test_curve_shape",
                "test_curve_toy",
                "test_curve_reference",
                "test_compare",
            ],
        ),
        ("auc_no_ends", "3", &["test_auc", "test_compare"]),
        (
            "panics",
            "1",
            &[
                "test_curve_shape",
                "test_curve_toy",
                "test_curve_reference",
                "test_compare",
            ],
        ),
        // Hostile: the crate's own RISE metric as the answer; a wrong answer
        // whose hidden toy curve is rewritten, after its test, with the
        // values a right one gives.
        (
            "hostile_crate_causal",
            "1",
            &[
                "test_curve_shape",
                "test_curve_toy",
                "test_curve_reference",
                "test_compare",
            ],
        ),
        (
            "hostile_forge_deletion",
            "2",
            &["test_curve_toy", "test_curve_reference", "test_compare"],
        ),
    ];
    check_grades(&rows, &TESTS, &expected, &out);
    let fb = std::fs::read_to_string(dir.join("feedback/ascending.txt")).unwrap();
    assert!(fb.contains("most important pixels first"), "{fb}");
    let fb = std::fs::read_to_string(dir.join("feedback/hostile_crate_causal.txt")).unwrap();
    assert!(
        fb.contains("`CausalMetric`") && fb.contains("withholds"),
        "{fb}"
    );
}

/// A class graded, then graded again after the instructor changed a test:
/// where only a test's hidden checks changed, the values each notebook
/// handed in are checked again (no notebook runs), and only verdicts that
/// changed are new; `--student` grades one student again and keeps the
/// rest. Late submissions (nbgrader's `timestamp.txt`) lose the table's
/// share; the Canvas file has Canvas's layout.
#[test]
#[ignore = "needs set-up's Jupyter and Rust kernel (scripts/test runs it)"]
fn regrading_reruns_only_what_changed() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("regrading");
    let class = dir.join("class");
    for (student, file, stamp) in [
        ("alice", "correct", "2026-12-02 23:00:00.000000 UTC"),
        ("bob", "no_abs", "2026-12-01 11:00:00.000000 UTC"),
    ] {
        let d = class.join(student);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            repo_root().join(format!("crate/tests/submissions/{file}.ipynb")),
            d.join("homework_smoothgrad.ipynb"),
        )
        .unwrap();
        std::fs::write(d.join("timestamp.txt"), stamp).unwrap();
    }
    let master = dir.join("homework_smoothgrad.ipynb");
    let solution =
        std::fs::read_to_string(repo_root().join("notebooks/homework_smoothgrad.ipynb")).unwrap();
    std::fs::write(&master, &solution).unwrap();
    let grade = |extra: &[&str]| {
        let mut c = script("grade.py");
        c.arg(&class)
            .arg("--master")
            .arg(&master)
            .args(["--cell-timeout", "120", "--seed", "3"])
            .arg("--out")
            .arg(dir.join("grades.csv"))
            .arg("--feedback")
            .arg(dir.join("feedback"))
            .args([
                "--lms",
                "canvas",
                "--deadline",
                "2026-12-01T12:00+00:00",
                "--late-penalty",
                "10,20,50",
            ])
            .args(extra);
        run(c)
    };
    grade(&[]);
    let rows = read_csv(&dir.join("grades.csv"));
    let row = |s: &str| rows.iter().find(|r| r["student"] == s).unwrap().clone();
    let alice = row("alice");
    assert_eq!(
        (
            alice["total"].as_str(),
            alice["late_days"].as_str(),
            alice["final"].as_str()
        ),
        ("7", "2", "5.6"),
        "{alice:?}"
    );
    let bob = row("bob");
    assert_eq!(
        (bob["total"].as_str(), bob["late_days"].as_str()),
        ("6", "0"),
        "{bob:?}"
    );
    let canvas = std::fs::read_to_string(dir.join("grades_canvas.csv")).unwrap();
    let lines: Vec<&str> = canvas.lines().collect();
    assert!(
        lines[0].starts_with("Student,ID,SIS User ID,SIS Login ID,Section,"),
        "{canvas}"
    );
    assert!(lines[1].starts_with("Points Possible,,,,,7"), "{canvas}");
    assert!(lines.contains(&"alice,,,alice,,5.6"), "{canvas}");

    // Only test_map's hidden check changed: checked again, nothing run.
    let changed = solution.replace(
        "max over channels of the absolute value",
        "the largest absolute value over the channels",
    );
    assert_ne!(changed, solution);
    std::fs::write(&master, changed).unwrap();
    let out = grade(&["--regrade"]);
    assert!(
        out.contains("alice: 7/7 (ok, rechecked") && out.contains("bob: 6/7 (ok, rechecked"),
        "{out}"
    );
    let report = std::fs::read_to_string(dir.join("report/index.html")).unwrap();
    assert!(
        report.contains("0 graded, 2 checked again, 0 kept"),
        "{report}"
    );
    // bob's test_map has its new message: a new verdict; alice's are not.
    let bob_fb = std::fs::read_to_string(dir.join("feedback/bob.txt")).unwrap();
    assert!(
        bob_fb.contains("the largest absolute value over the channels"),
        "{bob_fb}"
    );
    assert_eq!(report.matches(" new\">").count(), 1, "{report}");

    // One student again: alice runs, bob is kept.
    let out = grade(&["--regrade", "--student", "alice"]);
    assert!(
        out.contains("alice: 7/7 (ok, graded") && out.contains("bob: 6/7 (ok, kept"),
        "{out}"
    );
}

#[test]
#[ignore = "needs set-up's Jupyter and Rust kernel (scripts/test runs it)"]
fn grading_the_network_visualisation_homework() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("grading-fooling");
    let mut c = script("grade.py");
    // One seed, so that every run draws the same hidden inputs: a wrong
    // answer can pass a drawn test by chance (a photograph of the target
    // class that is the given image itself).
    c.arg(repo_root().join("crate/tests/submissions_fooling"))
        .arg("--master")
        .arg(repo_root().join("notebooks/homework_fooling.ipynb"))
        .args(["--seed", "7"])
        .arg("--out")
        .arg(dir.join("grades.csv"))
        .arg("--feedback")
        .arg(dir.join("feedback"));
    let out = run(c);
    let rows = read_csv(&dir.join("grades.csv"));
    const TESTS: [&str; 7] = [
        "test_fool_visible",
        "test_fool_hidden",
        "test_fool_clamp",
        "test_visual_visible",
        "test_visual_steps",
        "test_visual_hidden",
        "test_figure",
    ];
    const FOOL: [&str; 3] = ["test_fool_visible", "test_fool_hidden", "test_fool_clamp"];
    let expected: [(&str, &str, &[&str]); 8] = [
        ("correct", "7", &[]),
        // Other tensor operations, another image after 100 steps: the same marks.
        ("alternative", "7", &[]),
        // Down the score: never fooled (and NaN once the gradient vanishes,
        // which also breaks its figure).
        ("descent", "3", &[FOOL[0], FOOL[1], FOOL[2], "test_figure"]),
        // Steps of the gradient's own length: too long to be CS231n's rule.
        (
            "raw_gradient",
            "2",
            &[
                FOOL[0],
                FOOL[1],
                FOOL[2],
                "test_visual_steps",
                "test_visual_hidden",
            ],
        ),
        // Starts from the lab's photograph most like the target: fooled, but
        // not a small change of the given image.
        ("photograph", "4", &FOOL),
        // Without the clamp: the hay image and the saturated patches leave
        // the range (the image drawn for test_fool_hidden happens not to).
        (
            "no_clamp",
            "2",
            &[
                FOOL[0],
                FOOL[2],
                "test_visual_visible",
                "test_visual_steps",
                "test_visual_hidden",
            ],
        ),
        // Hostile: the crate's own answer (withheld); a model of its own,
        // defined in an added cell, that takes anything for a stingray.
        ("hostile_withheld", "0", &TESTS),
        (
            "hostile_own_model",
            "1",
            &[
                FOOL[0],
                FOOL[1],
                FOOL[2],
                "test_visual_visible",
                "test_visual_steps",
                "test_visual_hidden",
            ],
        ),
    ];
    check_grades(&rows, &TESTS, &expected, &out);
    let feedback =
        |name: &str| std::fs::read_to_string(dir.join(format!("feedback/{name}.txt"))).unwrap();
    assert!(feedback("no_clamp").contains("clamp each channel after each step"));
    assert!(feedback("raw_gradient").contains("each step should have length 1"));
    assert!(feedback("photograph").contains("not a small change of the given image"));
    assert!(feedback("hostile_own_model")
        .contains("the grader's model takes the fooling image for class"));
    let withheld = feedback("hostile_withheld");
    assert!(
        withheld.contains("`synthesis`") && withheld.contains("withholds"),
        "{withheld}"
    );
    assert!(!withheld.contains("cfg"), "{withheld}");
}

#[test]
#[ignore = "needs set-up's Jupyter and Rust kernel (scripts/test runs it)"]
fn grading_refuses_without_a_sandbox_unless_told_to_grade_unsafely() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("grading-unsandboxed");
    std::fs::create_dir_all(dir.join("submissions")).unwrap();
    std::fs::copy(
        repo_root().join("crate/tests/submissions/correct.ipynb"),
        dir.join("submissions/correct.ipynb"),
    )
    .unwrap();
    let grade = |unsafe_flag: bool| {
        let mut c = script("grade.py");
        c.arg(dir.join("submissions"))
            .arg("--out")
            .arg(dir.join("grades.csv"))
            .arg("--feedback")
            .arg(dir.join("feedback"))
            // No bubblewrap here: a machine that cannot sandbox.
            .env("SALIENCY_LAB_BWRAP", dir.join("no-bwrap"));
        if unsafe_flag {
            c.arg("--unsafe-no-sandbox");
        }
        c
    };
    let out = grade(false).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "graded without a sandbox: {text}");
    assert!(
        text.contains("cannot grade safely on this machine: bubblewrap")
            && text.contains("--unsafe-no-sandbox"),
        "{text}"
    );
    assert!(!dir.join("grades.csv").exists());
    // Told to: graded, and every line says so.
    let out = run(grade(true));
    assert!(
        out.contains("WITHOUT A SANDBOX")
            && out.contains("correct: 7/7")
            && out.contains("[UNSANDBOXED]"),
        "{out}"
    );
    let fb = std::fs::read_to_string(dir.join("feedback/correct.txt")).unwrap();
    assert!(fb.contains("GRADED WITHOUT A SANDBOX"), "{fb}");
}

#[test]
#[ignore = "needs set-up's nbgrader and Rust kernel (scripts/test runs it)"]
fn nbgrader_generates_the_same_student_version_and_autogrades() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let course = tmp("nbgrader-course");
    let root = repo_root();
    std::fs::copy(
        root.join("scripts/nbgrader_config.py"),
        course.join("nbgrader_config.py"),
    )
    .unwrap();
    let nbgrader = python().with_file_name("nbgrader");
    let cmd = |args: &[&str]| {
        let mut c = Command::new(&nbgrader);
        c.args(args)
            .current_dir(&course)
            .env("SALIENCY_LAB_ROOT", &root);
        run(c)
    };
    // (assignment, its solution notebook, its kept submissions' folder,
    // (student, kept submission, the score it should get))
    type Students = [(&'static str, &'static str, &'static str)];
    let assignments: [(&str, &str, &str, &Students); 2] = [
        // Two honest submissions, and a hostile one that forges every
        // verdict and value after the tests ran (its own answer earns 2):
        // under nbgrader too, a test passes only on the grader's verdict.
        (
            "smoothgrad",
            "homework_smoothgrad",
            "submissions",
            &[
                ("alice", "correct", "7.0"),
                ("carol", "batch_range", "6.0"),
                ("eve", "hostile_forge_after", "2.0"),
            ],
        ),
        // The network-visualisation homework: its checks run in the
        // grader's kernel with the grader's own model under nbgrader too.
        (
            "fooling",
            "homework_fooling",
            "submissions_fooling",
            &[("dave", "correct", "7.0"), ("frank", "descent", "3.0")],
        ),
    ];
    for (assignment, notebook, kept, students) in assignments {
        let source = course.join("source").join(assignment);
        std::fs::create_dir_all(&source).unwrap();
        std::fs::copy(
            root.join(format!("notebooks/{notebook}.ipynb")),
            source.join(format!("{notebook}.ipynb")),
        )
        .unwrap();
        cmd(&["generate_assignment", assignment, "--force"]);
        let release: serde_like::Notebook =
            serde_like::read(&course.join(format!("release/{assignment}/{notebook}.ipynb")));
        let ours: serde_like::Notebook =
            serde_like::read(&root.join(format!("notebooks/{notebook}_student.ipynb")));
        assert_eq!(
            release.sources, ours.sources,
            "{assignment}: nbgrader's release differs from scripts/make_student.py's"
        );
        for (student, file, _) in students {
            let d = course.join("submitted").join(student).join(assignment);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(
                root.join(format!("crate/tests/{kept}/{file}.ipynb")),
                d.join(format!("{notebook}.ipynb")),
            )
            .unwrap();
        }
        cmd(&["autograde", assignment, "--create", "--force"]);
    }
    cmd(&["export", "--to", "grades.csv"]);
    let rows = read_csv(&course.join("grades.csv"));
    for (assignment, _, _, students) in assignments {
        for (student, file, want) in students {
            let row = rows
                .iter()
                .find(|r| r["student_id"] == *student && r["assignment"] == assignment)
                .unwrap_or_else(|| panic!("no row for {student} in {assignment}: {rows:?}"));
            assert_eq!(row["score"], *want, "{assignment}: {student} ({file})");
        }
    }
}

/// Cell sources of a notebook, compared as text (no JSON crate needed: the
/// notebooks are written by Python's json with one source string per cell).
mod serde_like {
    use std::path::Path;

    pub struct Notebook {
        pub sources: Vec<String>,
    }

    pub fn read(path: &Path) -> Notebook {
        let out = std::process::Command::new(super::python())
            .args(["-c", "import json,sys; nb=json.load(open(sys.argv[1])); [print(json.dumps(c['source'] if isinstance(c['source'], str) else ''.join(c['source']))) for c in nb['cells']]"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Notebook {
            sources: String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(String::from)
                .collect(),
        }
    }
}
