"""Run reports: ``lbp report RUN_DIR... --out DIR`` writes ``DIR/report.html`` (self-
contained: inline style, no script, no network asset) and ``DIR/report.md``, with the
figures as PNG files beside them.

A report covers one run directory or a group of them (then it starts with a table
comparing their main metrics). What each section shows depends on the files found:

* ``config.yaml``: the configuration;
* ``metrics.json`` (docs/metrics.md): final metrics per stage (``val``, ``final_val``,
  ``test``), a per-class table per stage, best epoch and checkpoint;
* ``confusion_<stage>.csv``: the confusion matrix (table and figure);
* ``metrics.csv`` (CSV logger): per-epoch validation curves;
* ``predictions.csv`` with ``label`` and ``p_<class>`` columns (``lbp predict`` on
  labelled data, cross-validation folds): one-vs-rest ROC curves per class; with
  ``score`` and 0/1 ``label`` columns: the ROC curve of the scores;
* ``rounds.csv`` (federated runs): per-round validation and client-loss curves;
* ``summary.json`` + ``fold_<i>/`` (``lbp cv``): mean, std and pooled metrics (with the
  baselines and subject-bootstrap intervals side by side when the summary has them), a
  per-fold table, the pooled confusion matrix and ROC curves;
* ``state.json`` + ``results.csv`` (``lbp sweep``): the table of runs, best first.

A folder holding only ``version_<n>`` folders stands for its latest version.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from lbp_motion.errors import LbpError
from lbp_motion.pipelines.report_figures import (  # noqa: F401 (re-exported: these names import from here as before)
    Figures,
    confusion_section,
    epoch_curves,
    read_confusion,
    roc_curves,
    roc_section,
    rounds_section,
)
from lbp_motion.pipelines.report_parts import (  # noqa: F401 (re-exported, as above)
    MAIN_METRICS,
    STAGE_ORDER,
    Cell,
    Figure,
    Section,
    Table,
    fmt,
    metrics_tables,
    num,
    split_metrics,
    text,
)
from lbp_motion.pipelines.report_sections import build_sections, comparison_table


# -- reading run directories ---------------------------------------------------------------
def resolve_run_dirs(paths: list[str | Path]) -> list[Path]:
    """The run directories behind the given paths (a parent of ``version_<n>`` folders
    stands for its latest version); raises :class:`LbpError` for a path that is none."""
    out = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise LbpError(f"{p}: no such run directory")
        if any(
            (p / f).is_file()
            for f in (
                "metrics.json",
                "summary.json",
                "state.json",
                "config.yaml",
                "predictions.csv",
            )
        ):
            out.append(p)
            continue
        versions = [v for v in p.glob("version_*") if v.name.split("_")[-1].isdigit()]
        if not versions:
            raise LbpError(
                f"{p}: not a run directory (no metrics.json, summary.json of lbp cv, state.json of lbp sweep, "
                "config.yaml or predictions.csv)"
            )
        out.append(max(versions, key=lambda v: int(v.name.split("_")[-1])))
    return out


# -- rendering -----------------------------------------------------------------------------
HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { margin-top: 2.5rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .5rem 0 1.2rem; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
.note { color: #57606a; font-size: .85rem; }
figure { display: inline-block; margin: .5rem 1rem 1rem 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { font-size: .85rem; color: #57606a; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; font-size: .82rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; word-break: break-all; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="note">Generated {{ generated }} by <code>lbp report</code> (lbp_motion {{ version }}) from
{{ sections|length }} run director{{ "y" if sections|length == 1 else "ies" }}.</p>
{% macro render_table(t) %}
<table>
<caption>{{ t.title }}</caption>
<thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for cell in row %}{% if cell.value is not none %}<td class="num" data-value="{{ cell.value|tojson }}">{{ cell.text }}</td>{% else %}<td>{{ cell.text }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% if t.note %}<p class="note">{{ t.note }}</p>{% endif %}
{% endmacro %}
{% if comparison %}{{ render_table(comparison) }}{% endif %}
{% for s in sections %}
<section id="run-{{ loop.index }}">
<h2>{{ s.name }} <small class="note">({{ s.kind }})</small></h2>
<p class="note">{{ s.path }}</p>
{% if s.facts %}<dl>{% for k, v in s.facts %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>{% endif %}
{% for n in s.notes %}<p class="note">{{ n }}</p>{% endfor %}
{% for t in s.tables %}{{ render_table(t) }}{% endfor %}
{% for f in s.figures %}<figure><img src="{{ f.file }}" alt="{{ f.title }}"><figcaption>{{ f.title }}{% if f.caption %}: {{ f.caption }}{% endif %}</figcaption></figure>
{% endfor %}
{% if s.config %}<details><summary>Configuration</summary><pre>{{ s.config }}</pre></details>{% endif %}
</section>
{% endfor %}
</body>
</html>
"""


def render_html(title: str, sections: list[Section], comparison: Table | None) -> str:
    import jinja2

    from lbp_motion import __version__

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(HTML_TEMPLATE).render(
        title=title,
        sections=sections,
        comparison=comparison,
        version=__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _md_table(t: Table) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = [
        f"**{esc(t.title)}**",
        "",
        "| " + " | ".join(esc(c) for c in t.columns) + " |",
        "|" + "---|" * len(t.columns),
    ]
    lines += ["| " + " | ".join(esc(c.text) for c in row) + " |" for row in t.rows]
    if t.note:
        lines += ["", f"*{t.note}*"]
    return lines + [""]


def render_markdown(title: str, sections: list[Section], comparison: Table | None) -> str:
    lines = [f"# {title}", ""]
    if comparison:
        lines += _md_table(comparison)
    for s in sections:
        lines += [f"## {s.name} ({s.kind})", "", f"`{s.path}`", ""]
        lines += [f"- {k}: {v}" for k, v in s.facts] + ([""] if s.facts else [])
        lines += [f"*{n}*" for n in s.notes] + ([""] if s.notes else [])
        for t in s.tables:
            lines += _md_table(t)
        for f in s.figures:
            lines += [f"![{f.title}]({f.file})", ""]
        if s.config:
            lines += [
                "<details><summary>Configuration</summary>",
                "",
                "```yaml",
                s.config.rstrip(),
                "```",
                "",
                "</details>",
                "",
            ]
    return "\n".join(lines)


def write_report(run_dirs: list[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Write ``out/report.html``, ``out/report.md`` and the figures; returns the HTML path."""
    runs = resolve_run_dirs(run_dirs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = Figures(out)
    sections = build_sections(runs, figures)
    comparison = comparison_table(sections, runs)
    title = title or (
        "Run report: "
        + ", ".join(s.name for s in sections[:3])
        + (" ..." if len(sections) > 3 else "")
    )
    (out / "report.md").write_text(render_markdown(title, sections, comparison))
    path = out / "report.html"
    path.write_text(render_html(title, sections, comparison))
    return path
