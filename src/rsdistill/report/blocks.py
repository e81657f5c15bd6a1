"""A report as a list of blocks (heading, paragraph, table, image), rendered to Markdown
and HTML by the same code, so the two never disagree."""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass
class Block:
    kind: str  # "h1" | "h2" | "p" | "table" | "img"
    text: str = ""
    header: list[str] | None = None
    rows: list[list[str]] | None = None


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def pm(mean: float, std: float, seeds: int | None = None) -> str:
    """``mean ± std`` in %; the value alone for one seed, whose std says nothing."""
    if seeds == 1:
        return f"{100 * mean:.2f}"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def pm_of(row: dict, key: str) -> str:
    """``pm`` of an aggregate row's ``<key>_mean``, ``<key>_std`` over its ``seeds``."""
    return pm(row[f"{key}_mean"], row[f"{key}_std"], row.get("seeds"))


def seeds_text(seeds: int) -> str:
    """``mean ± std over 3 seeds`` or ``1 seed``: what a table's numbers are."""
    return "1 seed" if seeds == 1 else f"mean ± std over {seeds} seeds"


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind == "h1":
            out.append(f"# {b.text}\n")
        elif b.kind == "h2":
            out.append(f"## {b.text}\n")
        elif b.kind == "p":
            out.append(f"{b.text}\n")
        elif b.kind == "table":
            out.append("| " + " | ".join(b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out.extend("| " + " | ".join(r) + " |" for r in b.rows)
            out.append("")
        elif b.kind == "img":
            out.append(f"![{b.header[0]}]({b.text})\n")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    parts = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block]) -> str:
    body = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline_html(b.text)}</p>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                           for r in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "img":
            body.append(f'<figure><img src="{html.escape(b.text)}" alt="{html.escape(b.header[0])}">'
                        f"<figcaption>{html.escape(b.header[0])}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:"
             "collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
             "img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>rsdistill report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def paired_cell(p: dict | None) -> str:
    """A paired difference (``stats.paired_difference``) as ``+1.20 ± 2.10`` pt; the mean
    alone for one seed."""
    if p is None or p.get("mean") is None:
        return "–"
    if p["std"] is None:
        return f"{100 * p['mean']:+.2f}"
    return f"{100 * p['mean']:+.2f} ± {100 * p['std']:.2f}"


def verdict_cell(p: dict | None) -> str:
    """Whether a paired difference stands out of the seed noise, in words."""
    if p is None or p.get("mean") is None:
        return "–"
    if p["distinguishable"] is None:
        return "one seed: cannot tell"
    if not p["distinguishable"]:
        return f"no (within ± {100 * p['ci95']:.2f})"
    return f"yes, {'better' if p['mean'] > 0 else 'worse'} (± {100 * p['ci95']:.2f})"


PAIRED_NOTE = ("Paired Δ: accuracy of the distilled student minus that of the scratch "
               "student trained with the same seed (same split, batches and schedule), "
               "mean and std over the seeds, in points. “Beyond noise”: whether the 95 % "
               "confidence interval of that mean (Student's t, half-width in brackets) "
               "excludes 0; “no” means the difference is not distinguishable from seed "
               "noise with these seeds.")


def split_noise_note(n_test: int, accuracy: float) -> str:
    """What one test image weighs and the binomial standard error of an accuracy on the
    split: the resolution of every accuracy the report gives."""
    if n_test < 1:
        return ""
    se = (accuracy * (1 - accuracy) / n_test) ** 0.5
    return (f"The test split holds {n_test} images: one image is {100 / n_test:.2f} pt, and "
            f"an accuracy near {100 * accuracy:.0f} % carries a sampling standard error of "
            f"{100 * se:.1f} pt about the accuracy on new scenes. Every student here is "
            "tested on the same split, so the paired differences are not blurred by it, "
            "but a lead smaller than that is a lead on these images only.")
