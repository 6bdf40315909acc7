"""The charts of an evaluation report: answer metrics by system (with their 95% intervals) and latency.

matplotlib is optional: without it a report has no charts, and nothing else changes.
"""

from __future__ import annotations

from pathlib import Path

from .metrics import LABELS


def draw_charts(summary: dict, folder: Path) -> list[str]:
    """Write answers.png (answer metrics by system, with 95% intervals) and latency.png (p50, p95) into
    `folder`; returns the file names written (none when matplotlib is not installed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    systems = list(summary["systems"])
    written = []
    metrics = [
        m
        for m in ("accuracy", "contains", "f1", "rouge_l", "refusal_accuracy", "false_refusal")
        if any(m in summary["systems"][s]["metrics"] for s in systems)
    ]
    if metrics:
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(metrics) + 2), 4))
        width = 0.8 / len(systems)
        for i, s in enumerate(systems):
            st = summary["systems"][s]["metrics"]
            means = [100 * (st.get(m) or {}).get("mean", 0) or 0 for m in metrics]
            errs = [
                [100 * ((st[m]["mean"] - st[m]["low"]) if m in st else 0) for m in metrics],
                [100 * ((st[m]["high"] - st[m]["mean"]) if m in st else 0) for m in metrics],
            ]
            ax.bar([j + i * width for j in range(len(metrics))], means, width, yerr=errs, capsize=3, label=s)
        ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(metrics))])
        ax.set_xticklabels([LABELS[m] for m in metrics])
        ax.set_ylabel("% (95% bootstrap CI)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{summary['suite']}: answers by system")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "answers.png", dpi=110)
        plt.close(fig)
        written.append("answers.png")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    data = [[summary["systems"][s]["latency_p50_s"] or 0, summary["systems"][s]["latency_p95_s"] or 0] for s in systems]
    ax.bar([i - 0.2 for i in range(len(systems))], [d[0] for d in data], 0.4, label="p50")
    ax.bar([i + 0.2 for i in range(len(systems))], [d[1] for d in data], 0.4, label="p95")
    ax.set_xticks(range(len(systems)))
    ax.set_xticklabels(systems)
    ax.set_ylabel("seconds per answer")
    ax.set_title("Latency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "latency.png", dpi=110)
    plt.close(fig)
    written.append("latency.png")
    return written
