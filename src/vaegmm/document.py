"""A report as a list of blocks (headings, paragraphs, tables, figures), rendered twice: to Markdown with
linked PNGs and to one self-contained HTML file with the PNGs embedded."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from .storage import atomic_write_bytes


@dataclass
class Report:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", header, rows))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", Path(path), caption))

    def html(self, fragment: str, markdown: str) -> None:
        """A fragment only the HTML page can hold (an interactive element); Markdown gets ``markdown`` instead."""
        self.blocks.append(("raw", fragment, markdown))

    def to_markdown(self, base: Path) -> str:
        lines = [f"# {self.title}", ""]
        for block in self.blocks:
            kind = block[0]
            if kind == "h2":
                lines += [f"## {block[1]}", ""]
            elif kind == "p":
                lines += [block[1], ""]
            elif kind == "table":
                header, rows = block[1], block[2]
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
                lines.append("")
            elif kind == "img":
                lines += [f"![{block[2]}]({block[1].relative_to(base).as_posix()})", f"*{block[2]}*", ""]
            elif kind == "raw":
                lines += [block[2], ""]
        return "\n".join(lines)

    def to_html(self) -> str:
        def inline(text: str) -> str:
            return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))

        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for block in self.blocks:
            kind = block[0]
            if kind == "h2":
                body.append(f"<h2>{html.escape(block[1])}</h2>")
            elif kind == "p":
                body.append(f"<p>{inline(block[1])}</p>")
            elif kind == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in block[2])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "raw":
                body.append(block[1])
            elif kind == "img":
                data = base64.b64encode(block[1].read_bytes()).decode()
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block[2])}">'
                            f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
        style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;line-height:1.5;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}"
                 "th{background:#f3f3f3}img{max-width:100%}figure{margin:1.5em 0}figcaption{color:#555;font-style:italic}")
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    def write(self, folder: Path) -> tuple[Path, Path]:
        md, page = folder / "report.md", folder / "report.html"
        atomic_write_bytes(md, self.to_markdown(folder).encode())
        atomic_write_bytes(page, self.to_html().encode())
        return md, page


def _cell(value) -> str:
    """A table cell; floats by magnitude, so 1e-06 never prints as 0.0000."""
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)
