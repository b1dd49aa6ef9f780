"""The pages a grading run writes for people (grade.py), readable offline (no
script, no request: styles inline, figures as data): the class report for
the instructor, and each student's feedback page.

The class report: the run's settings (the solution notebook and its digest,
the crate as graded, the sandbox and its limits, the date); per test its
pass rate and its most common failure messages (numbers masked to group
them); the marks' histogram (drawn by the crate's plot module, as the labs'
figures are); per student the marks, status, days late, time taken and a
link to the feedback page, with the verdicts this run changed marked; and
the pairs of submissions whose answers are near-identical (similarity.py),
for the instructor to look at.

A feedback page shows a student each test's name, points, verdict and
message (never the hidden tests' code or the reference's values: only what
grade.py's feedback text says), and the figures their answer cells drew,
beside the task each answers. Everything from a submission is escaped; its
figures were re-encoded by grade.py first.
"""
import base64
import collections
import html
import re

from handin import clean

STYLE = """
body{font-family:system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f3f3f3}td.num,th.num{text-align:right}
.pass{color:#11651d}.fail{color:#a11}.new{background:#fff3bf}.small{color:#666;font-size:.9em}
.bar{display:inline-block;height:10px;background:#4c78a8;vertical-align:middle}td.rate{white-space:nowrap}
figure{display:inline-block;margin:8px 16px 8px 0}img{max-width:100%;border:1px solid #ddd}
"""
STATUS = {"ok": "graded", "timeout": "timed out", "unreadable": "not a notebook", "tampering": "tampering",
          "error": "error", "grader-error": "grader error"}


def esc(text):
    return html.escape(str(text), quote=True)


def page(title, body):
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def png_data(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def pattern(message):
    """A failure message with its numbers masked, to group the same failure
    with other values."""
    return re.sub(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", "#", message.strip())


def test_stats(records, tests, graded_only=True):
    """{test id: (passed, out of, [(message pattern, count, an example)])}."""
    out = {}
    for gid, _ in tests:
        rows = [r for r in records if not graded_only or r.status != "unreadable"]
        passed = sum(1 for r in rows if r.results.get(gid, {}).get("passed"))
        failures = collections.Counter()
        example = {}
        for r in rows:
            res = r.results.get(gid)
            if res and not res.get("passed"):
                p = pattern(res.get("message", ""))
                failures[p] += 1
                example.setdefault(p, res.get("message", ""))
        common = [(p, n, example[p]) for p, n in failures.most_common(3)]
        out[gid] = (passed, len(rows), common)
    return out


def class_report(title, settings, records, tests, feedback_dir, histogram=None, pairs=(), threshold=None):
    """The class report's HTML. `settings`: [(label, value)]; `records`: the
    gradebook's records; `feedback_dir`: the feedback pages' folder, as a
    link from the report's own; `histogram`: PNG bytes or None; `pairs`:
    [(name, name, similarity)]."""
    maximum = sum(p for _, p in tests)
    parts = [f"<h1>{esc(title)}: the class</h1>"]
    graded = [r for r in records if r.status != "unreadable"]
    finals = [r.final(tests) for r in graded]
    mean = sum(finals) / len(finals) if finals else 0.0
    parts.append(f"<p>{len(records)} submission(s), {len(graded)} graded; mean mark "
                 f"<b>{mean:.2f}</b> / {maximum:g}.</p>")
    parts.append("<h2>The run</h2><table>" + "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in settings) + "</table>")
    parts.append("<h2>Tests</h2><table id=\"tests\"><tr><th>test</th><th class=\"num\">points</th>"
                 "<th class=\"num\">passed</th><th class=\"num\">pass rate</th><th>most common failures</th></tr>")
    stats = test_stats(records, tests)
    for gid, pts in tests:
        passed, n, common = stats[gid]
        rate = passed / n if n else 0.0
        failures = "<br>".join(f"{count} x {esc(example[:240])}" for _, count, example in common) or "&mdash;"
        parts.append(f"<tr data-test=\"{esc(gid)}\" data-passed=\"{passed}\" data-graded=\"{n}\"><td>{esc(gid)}</td>"
                     f"<td class=\"num\">{pts:g}</td><td class=\"num\">{passed} / {n}</td>"
                     f"<td class=\"num rate\"><span class=\"bar\" style=\"width:{int(80 * rate)}px\"></span> "
                     f"{100 * rate:.0f}%</td><td class=\"small\">{failures}</td></tr>")
    parts.append("</table>")
    parts.append("<h2>Marks</h2>")
    if histogram:
        parts.append(f"<img id=\"histogram\" alt=\"the marks' histogram\" src=\"{png_data(histogram)}\">")
    counts = collections.Counter(round(f, 4) for f in finals)
    parts.append("<table id=\"marks\"><tr><th>mark</th><th class=\"num\">students</th></tr>" + "".join(
        f"<tr data-mark=\"{m:g}\" data-count=\"{c}\"><td>{m:g}</td><td class=\"num\">{c}</td></tr>"
        for m, c in sorted(counts.items())) + "</table>")
    parts.append("<h2>Students</h2><p class=\"small\">Marks changed by this run are "
                 "<span class=\"new\">highlighted</span>.</p><table id=\"students\"><tr><th>student</th>"
                 + "".join(f"<th class=\"num\">{esc(gid)}</th>" for gid, _ in tests)
                 + "<th class=\"num\">total</th><th class=\"num\">days late</th><th class=\"num\">final</th>"
                   "<th>status</th><th class=\"num\">time (s)</th><th>feedback</th></tr>")
    for r in records:
        cells = []
        for gid, pts in tests:
            res = r.results.get(gid, {})
            mark = pts if res.get("passed") else 0
            cls = ("pass" if res.get("passed") else "fail") + (" new" if res.get("new") else "")
            cells.append(f"<td class=\"num {cls}\">{mark:g}</td>")
        late = f"{r.late_days} (-{100 * r.penalty:g}%)" if r.late_days else ""
        took = f"{r.seconds:.0f}" if r.seconds is not None else ""
        if not r.graded:
            took += " (kept)"
        link = f"<a href=\"{esc(feedback_dir)}/{esc(r.key)}.html\">feedback</a>"
        parts.append(f"<tr data-student=\"{esc(r.name)}\" data-total=\"{r.raw(tests):g}\"><td>{esc(r.name)}</td>"
                     + "".join(cells) + f"<td class=\"num\">{r.raw(tests):g}</td><td class=\"num\">{esc(late)}</td>"
                     f"<td class=\"num\">{r.final(tests):g}</td><td>{esc(STATUS.get(r.status, r.status))}"
                     f"{'<br><span class=small>' + esc(r.note[:300]) + '</span>' if r.note else ''}</td>"
                     f"<td class=\"num\">{esc(took)}</td><td>{link}</td></tr>")
    parts.append("</table>")
    parts.append("<h2>Near-identical answers</h2>")
    if threshold is not None:
        parts.append(f"<p class=\"small\">Pairs whose answer cells share at least {100 * threshold:.0f}% of their "
                     "token 8-grams once names, comments and whitespace are normalised and the starter code is "
                     "left out. A list to look at, not a verdict.</p>")
    if pairs:
        parts.append("<table id=\"similar\"><tr><th>submission</th><th>submission</th><th class=\"num\">"
                     "similarity</th></tr>" + "".join(
                         f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td class=\"num\">{s:.2f}</td></tr>"
                         for a, b, s in pairs) + "</table>")
    else:
        parts.append("<p id=\"similar\">None.</p>")
    return page(f"{title}: the class", "\n".join(parts))


def feedback_page(title, record, tests, tasks, unsafe=False):
    """A student's feedback page: `tasks` {answer id: the task's title}."""
    maximum = sum(p for _, p in tests)
    parts = [f"<h1>{esc(title)}: {esc(record.name)}</h1>",
             f"<p>Score: <b>{record.raw(tests):g} / {maximum:g}</b>"
             + (f"; {record.late_days} day(s) late, {100 * record.penalty:g}% off: <b>{record.final(tests):g}</b>"
                if record.late_days else "") + "</p>"]
    if unsafe:
        parts.append("<p class=\"fail\">Graded without a sandbox (--unsafe-no-sandbox).</p>")
    if record.seed is not None:
        parts.append(f"<p class=\"small\">The hidden tests' inputs were drawn with seed {record.seed}.</p>")
    if record.note:
        parts.append(f"<p>Note: {esc(record.note)}</p>")
    parts.append("<table><tr><th>test</th><th class=\"num\">points</th><th>verdict</th></tr>")
    for gid, pts in tests:
        res = record.results.get(gid)
        if res is None:
            verdict, cls, mark = f"not run ({esc(STATUS.get(record.status, record.status))})", "fail", 0
        elif res.get("passed"):
            verdict, cls, mark = "passed", "pass", pts
        else:
            verdict, cls, mark = f"failed: {esc(res.get('message', ''))}", "fail", 0
        parts.append(f"<tr><td>{esc(gid)}</td><td class=\"num\">{mark:g} / {pts:g}</td>"
                     f"<td class=\"{cls}\">{verdict}</td></tr>")
    parts.append("</table>")
    if record.figures:
        parts.append("<h2>Your figures</h2>")
        for answer, task, png in record.figures:
            parts.append(f"<figure><figcaption>{esc(tasks.get(answer) or task or answer)}</figcaption>"
                         f"<img alt=\"a figure of {esc(answer)}\" src=\"{png_data(png)}\"></figure>")
    return page(f"{title}: {record.name}", "\n".join(parts))


def feedback_text(title, name, tests, results, status, note, unsafe, seed=None):
    total = sum(pts for gid, pts in tests if results.get(gid, {}).get("passed"))
    lines = [f"{title}: {name}", f"Score: {total:g} / {sum(p for _, p in tests):g}", ""]
    if seed is not None:
        lines += [f"The hidden tests' inputs were drawn with seed {seed} (scripts/grade.py --seed {seed} draws them "
                  "again).", ""]
    if unsafe:
        lines += ["GRADED WITHOUT A SANDBOX (--unsafe-no-sandbox): these marks are not protected from the code graded,",
                  "and the crate's own answer to the homework was within its reach", ""]
    if note:
        lines += [f"Note: {note}", ""]
    for gid, pts in tests:
        r = results.get(gid)
        if r is None:
            lines.append(f"{gid} (0/{pts:g}): not run ({status})")
        elif r["passed"]:
            lines.append(f"{gid} ({pts:g}/{pts:g}): passed")
        else:
            lines.append(f"{gid} (0/{pts:g}): failed: {clean(r['message'])}")
    return total, "\n".join(lines) + "\n"
