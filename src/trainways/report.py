"""Figures and reports of finished runs: the confusion matrix plot, and ``trainways compare``'s
report (``report.md``, a self-contained ``report.html``, ``comparison.json`` and the curves), read
from the runs' directories through :mod:`trainways.rundir` and :mod:`trainways.checkpoint`.

Nothing here trains; the figures it draws come from :mod:`trainways.summary` (written by the
runs) and :func:`trainways.agreement.compare`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainways import rundir
from trainways.agreement import compare
from trainways.files import write_atomic


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], topics: Sequence[str], path: Path
) -> None:
    """Save a confusion matrix with topic names on both axes (format from ``path``'s suffix)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none assumed
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(matrix)
    size = max(6.0, 0.22 * len(topics) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    # Log colour scale: "earn" and "acq" would otherwise wash every other cell out.
    image = axes.imshow(np.log1p(counts), cmap="Blues")
    axes.set_xticks(range(len(topics)), topics, rotation=90, fontsize=7)
    axes.set_yticks(range(len(topics)), topics, fontsize=7)
    axes.set_xlabel("predicted topic")
    axes.set_ylabel("true topic")
    axes.set_title("Confusion matrix (test split, log colour scale)")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="log(1 + wires)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# --------------------------------------------------------------------------- comparisons

_METRIC_PANELS = (("loss", "Loss"), ("accuracy", "Accuracy"), ("top5_accuracy", "Top-5 accuracy"))
_COLOURS = {"fit": "#1f77b4", "batch": "#d62728", "loop": "#2ca02c"}


def _weights(run: Path) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """A run's weights after epoch 1 and after its last epoch (verified checkpoint), by name."""
    from trainways import checkpoint

    first = checkpoint.first_epoch_weights(run) or []
    latest = checkpoint.load_checkpoint(run, warn=lambda message: None)
    final = latest.weights if latest is not None else ()
    names = [name for name, _ in first] or [f"weight {i}" for i in range(len(final))]
    return first, list(zip(names, final, strict=False))


def comparison_rows(
    out: Path, methods: Sequence[str], peaks: Mapping[str, float]
) -> list[dict[str, Any]]:
    """One summary row per method from its run directory (``out/<method>``); a figure the run
    did not log (a user's model may log no accuracy, or validate on nothing) is ``nan``."""
    rows = []
    for method in methods:
        run = out / method
        metrics = rundir.read_metrics(run)
        config = rundir.read_config(run)
        final, best = metrics["final"], metrics.get("best") or {}
        seconds = metrics["mean_seconds_per_epoch"]
        train_wires = metrics.get("train_samples")
        rows.append(
            {
                "method": method,
                "best_val_accuracy": best.get("val_accuracy", math.nan),
                "best_epoch": best.get("epoch"),
                "final_val_accuracy": final.get("val_accuracy", math.nan),
                "best_val_top5_accuracy": max(
                    rundir.read_history(run).get("val_top5_accuracy", []), default=math.nan
                ),
                "final_val_top5_accuracy": final.get("val_top5_accuracy", math.nan),
                "final_loss": final["loss"],
                "mean_seconds_per_epoch": seconds,
                "samples_per_second": (train_wires / seconds) if train_wires and seconds else None,
                "peak_memory_mb": peaks.get(method),
                "epochs": metrics["epochs"],
                "lr_halve_at": config["train"]["lr_halve_at"],
            }
        )
    return rows


def plot_comparison(out: Path, methods: Sequence[str]) -> list[Path]:
    """Per-epoch curves of every method overlaid (SVG and PNG); returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histories = {m: rundir.read_history(out / m) for m in methods}
    plots = out / rundir.PLOTS
    plots.mkdir(exist_ok=True)
    written = []
    for key, title in _METRIC_PANELS:
        if not all(key in history for history in histories.values()):
            continue  # a user's model need not log it
        figure, axes = plt.subplots(figsize=(6.4, 4.0))
        for method, history in histories.items():
            epochs = range(1, len(history[key]) + 1)
            colour = _COLOURS.get(method)
            axes.plot(epochs, history[key], "o--", color=colour, label=f"{method} train")
            if f"val_{key}" in history:
                axes.plot(epochs, history[f"val_{key}"], "s-", color=colour, label=f"{method} val")
        axes.set(title=f"{title} per epoch", xlabel="epoch", ylabel=title.lower())
        _epoch_axis(axes, max(len(h[key]) for h in histories.values()))
        axes.legend(fontsize=8, ncol=2)
        axes.grid(alpha=0.3)
        written.append(_save(figure, plots / key))
        plt.close(figure)
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for method in methods:
        seconds = rundir.read_metrics(out / method)["seconds_per_epoch"]
        axes.plot(
            range(1, len(seconds) + 1), seconds, "o-", color=_COLOURS.get(method), label=method
        )
    axes.set(title="Seconds per epoch", xlabel="epoch", ylabel="seconds")
    _epoch_axis(axes, max(len(h["loss"]) for h in histories.values()))
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    written.append(_save(figure, plots / "seconds_per_epoch"))
    plt.close(figure)
    return written


def _epoch_axis(axes: Any, epochs: int) -> None:
    """Whole epochs on the x axis, from 1; a short run gets one tick per epoch and a margin."""
    from matplotlib.ticker import MaxNLocator

    if epochs <= 12:
        axes.set_xticks(range(1, epochs + 1))
        axes.set_xlim(0.5, epochs + 0.5)
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(figure: Any, stem: Path) -> Path:
    figure.tight_layout()
    figure.savefig(stem.with_suffix(".svg"))
    figure.savefig(stem.with_suffix(".png"), dpi=110)
    return stem.with_suffix(".png")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


_COLUMNS = (
    ("method", "method", 0),
    ("best val acc (epoch)", None, 4),
    ("final val acc", "final_val_accuracy", 4),
    ("best val top-5", "best_val_top5_accuracy", 4),
    ("final val top-5", "final_val_top5_accuracy", 4),
    ("final loss", "final_loss", 4),
    ("s / epoch", "mean_seconds_per_epoch", 2),
    ("train samples / s", "samples_per_second", 0),
    ("peak memory (MB)", "peak_memory_mb", 0),
)


def _cells(row: Mapping[str, Any]) -> list[str]:
    cells = []
    for _, key, digits in _COLUMNS:
        if key is None:
            best = row["best_val_accuracy"]
            cells.append("–" if math.isnan(best) else f"{best:.4f} ({row['best_epoch']})")
        elif key == "method":
            cells.append(str(row["method"]))
        else:
            value = row[key]
            whole = digits == 0 and value is not None
            cells.append(f"{value:,.0f}" if whole else _fmt(value, digits))
    return cells


def baseline_cells(baseline: Mapping[str, Any]) -> list[str]:
    """The report's bar-to-beat row: the baseline's accuracy where the runs have their
    validation accuracy; it has no epochs, top-5, loss or memory figure."""
    accuracy = f"{baseline['accuracy']:.4f}"
    cells = ["baseline"] + ["–"] * (len(_COLUMNS) - 1)
    cells[1] = cells[2] = accuracy
    return cells


def baseline_sentence(baseline: Mapping[str, Any]) -> str:
    """What the baseline row is, in one sentence."""
    return (
        f"The bar to beat (row `baseline`): {baseline['model']} on the same inputs, fitted on "
        f"the {baseline['train_wires']:,} training wires in {baseline['fit_seconds']:.1f} s and "
        f"scored on the {baseline['scored_wires']:,} {baseline['scored_on']} wires: accuracy "
        f"{baseline['accuracy']:.4f}, macro-F1 {baseline['macro_f1']:.4f} "
        "(`trainways baseline`)."
    )


def comparison_settings(out: Path, methods: Sequence[str]) -> str:
    """One line saying what was compared: seed, epochs, batch, data, date and versions."""
    from datetime import datetime
    from importlib.metadata import PackageNotFoundError, version

    config = rundir.read_config(out / methods[0])
    data, train = config["data"], config["train"]
    fingerprint = data.get("fingerprint") or {}
    digest = f" (sha256 {fingerprint['sha256']})" if fingerprint.get("sha256") else ""
    versions = []
    for package in ("trainways", "keras", "tensorflow"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return (
        f"Seed {train['seed']}, {train['epochs']} epoch(s), batch {train['batch_size']}, "
        f"data {data['source'] or 'the default source'}{digest}; written "
        f"{datetime.now().astimezone().isoformat(timespec='seconds')} with {', '.join(versions)}."
    )


def write_comparison_report(
    out: Path, methods: Sequence[str], peaks: Mapping[str, float], *, tutorial: bool
) -> None:
    """``report.md``, a self-contained ``report.html``, ``comparison.json`` and the plots."""
    import base64
    import html

    rows = comparison_rows(out, methods, peaks)
    pngs = plot_comparison(out, methods)
    weights = {m: _weights(out / m) for m in methods}
    histories = {m: rundir.read_history(out / m) for m in methods}
    agreement = None
    same_length = len({len(h["loss"]) for h in histories.values()}) == 1
    comparable = all(first and final for first, final in weights.values())
    if len(methods) > 1 and same_length and comparable and not tutorial:
        agreement = compare(
            {m: first for m, (first, _) in weights.items()},
            {m: final for m, (_, final) in weights.items()},
            histories,
        )
    # A comparison of backends (compare --backends) names its runs after them; the baseline is
    # the bar-to-beat row (compare fits it once, beside the runs).
    state_path = out / rundir.COMPARE_STATE
    state = rundir.read_json(state_path) if state_path.is_file() else {}
    baseline = state.get("baseline")
    payload = {
        "methods": list(methods),
        "tutorial": tutorial,
        "rows": rows,
        "agreement": agreement.to_dict() if agreement else None,
        "baseline": baseline,
    }
    rundir.write_json(out / rundir.COMPARISON, payload)

    cell_rows = [_cells(row) for row in rows] + ([baseline_cells(baseline)] if baseline else [])
    label = "backend" if state.get("backends") else "method"
    headers = [label, *(title for title, _, _ in _COLUMNS[1:])]
    settings = comparison_settings(out, methods)
    lines = ["# trainways comparison", "", settings, ""]
    if state.get("backends"):
        lines += [
            f"Method `{state['methods'][0]}` on each backend, every one from the same initial "
            f"weights (`{rundir.INITIAL_WEIGHTS}`) and the same batches.",
            "",
        ]
    if tutorial:
        lines += [
            "Settings of the tutorial chapter: 10 epochs; the learning rate halved at epoch 5 "
            "for `batch` only. The methods trained different schedules, so their weights are "
            "not compared.",
            "",
        ]
    lines += ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(cells) + " |" for cells in cell_rows]
    if baseline:
        lines += ["", baseline_sentence(baseline)]
    agreement_text = (
        f"Largest weight difference between {label}s: "
        f"{agreement.weight_difference:.3e} after epoch 1, "
        f"{agreement.final_weight_difference:.3e} after the last epoch; "
        f"largest per-epoch metric difference: {agreement.metric_difference:.3e} "
        f"(val_accuracy {agreement.val_accuracy_difference:.3e})."
        if agreement
        else f"Agreement figures: not computed (one {label}, or different settings)."
    )
    lines += ["", "## Agreement", "", agreement_text, "", "## Curves", ""]
    lines += [f"![{png.stem}]({rundir.PLOTS}/{png.name})" for png in pngs]
    write_atomic(out / rundir.REPORT_MD, "\n".join(lines) + "\n")

    def image(png: Path) -> str:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        # data-loaded lets a headless browser test tell that each image really decoded.
        return (
            f'<img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}" '
            'onload="this.dataset.loaded=1">'
        )

    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
        for cells in cell_rows
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trainways comparison</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: .35rem .6rem; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child {{ text-align: left; font-weight: 600; }}
.plots {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(28rem, 1fr)); gap: 1rem; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>trainways comparison</h1>
<p id="settings">{html.escape(settings)}</p>
{"<p>" + html.escape(lines[4]) + "</p>" if tutorial else ""}
<table id="results"><thead><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in headers)}</tr>
</thead><tbody>{table}</tbody></table>
{"<p id='baseline'>" + html.escape(baseline_sentence(baseline)) + "</p>" if baseline else ""}
<h2>Agreement</h2><p>{html.escape(agreement_text)}</p>
<h2>Curves</h2><div class="plots">{"".join(image(p) for p in pngs)}</div>
</body></html>
"""
    write_atomic(out / rundir.REPORT_HTML, page)
