"""Markdown for docs/RESULTS.md: marked blocks in the section "## Paper tables (make tables)"."""
from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

from pks4_lit.tables import outputs

SECTION = "## Paper tables (make tables)"
SECTION_INTRO = (
    "Written by `pks4_lit/tables/` (`make tables`, or one `make table-*`); each block below says the\n"
    "command, the machine and the date that produced it. Synthetic-scale numbers check the *shape* of\n"
    "the paper's claims (orderings, slopes, ratios), not its absolute accuracies.\n")


def replace_marked(text: str, start: str, end: str, block: str) -> str:
    """`text` with the span from marker `start` to marker `end` (both present) replaced by `block`."""
    head, rest = text.split(start, 1)
    return head + block + rest.split(end, 1)[1]


def write_block(key: str, markdown: str, path: Path | None = None) -> None:
    """Replace (or add) the block between `<!-- tables:key:start/end -->` inside our section."""
    path = path or outputs.RESULTS_MD
    start, end = f"<!-- tables:{key}:start -->", f"<!-- tables:{key}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = path.read_text() if path.is_file() else "# Results\n"
    if start in text and end in text:
        text = replace_marked(text, start, end, block)
    else:
        if SECTION not in text:
            text = text.rstrip() + f"\n\n{SECTION}\n\n{SECTION_INTRO}"
        head, tail = text.split(SECTION, 1)
        nxt = tail.find("\n## ")                   # the next section, if any: insert before it
        body, after = (tail, "") if nxt < 0 else (tail[:nxt], tail[nxt:])
        text = head + SECTION + body.rstrip() + f"\n\n{block}\n" + after
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")


def machine_line() -> str:
    import torch

    cpu = f"{os.cpu_count()}-core {platform.machine()} CPU"
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (f"{cpu}{gpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def provenance(command: str) -> str:
    return (f"Command: `{command}`  \nMachine: {machine_line()}  \n"
            f"Date: {datetime.datetime.now().isoformat(timespec='minutes')}\n")


def md_table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: "—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)
