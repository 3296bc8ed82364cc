"""ACE's playbook: numbered entries in sections, each with helpful/harmful counts, as a plain
Markdown file the generator reads in its prompt.

    ## strategies
    [str-00001] helpful=2 harmful=0 :: Push a box only when the cell behind it is free.
    ## mistakes
    [mis-00002] helpful=0 harmful=1 :: Walking into a wall wastes a step.

(The released ACE code's bullet layout.) `Playbook.parse(text).render() == text` for any text
`render` wrote. Curation (`add`, `tag`, `prune`) keeps it under an entry cap and a token budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ENTRY = re.compile(r"^\[(?P<id>[a-z]+-\d{5})\] helpful=(?P<helpful>\d+) harmful=(?P<harmful>\d+) :: (?P<content>.+)$")
PREFIX = {"strategies": "str", "mistakes": "mis", "facts": "fct"}  # sections the curator may add to


class PlaybookError(ValueError):
    """A playbook file that is not in the format `render` writes; the message names the line."""


@dataclass
class Entry:
    id: str
    section: str
    content: str
    helpful: int = 0
    harmful: int = 0


@dataclass
class Playbook:
    entries: list[Entry] = field(default_factory=list)
    next_id: int = 1

    def render(self) -> str:
        lines = []
        for section in dict.fromkeys(e.section for e in self.entries):
            lines.append(f"## {section}")
            lines += [f"[{e.id}] helpful={e.helpful} harmful={e.harmful} :: {e.content}" for e in self.entries if e.section == section]
        return "\n".join(lines) + ("\n" if lines else "")

    @classmethod
    def parse(cls, text: str) -> Playbook:
        book, section = cls(), None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            if line.startswith("## "):
                section = line[3:].strip()
                continue
            m = _ENTRY.match(line)
            if m is None or section is None:
                raise PlaybookError(f"playbook line {lineno}: {line[:80]!r} is not `[xxx-00001] helpful=N harmful=N :: text` under a `## section`")
            book.entries.append(Entry(m["id"], section, m["content"], int(m["helpful"]), int(m["harmful"])))
            book.next_id = max(book.next_id, int(m["id"].split("-")[1]) + 1)
        return book

    def add(self, section: str, content: str) -> Entry | None:
        """A new entry, unless its text (case and spacing aside) is already there."""
        content = " ".join(content.split())
        if not content or any(_same(e.content, content) for e in self.entries):
            return None
        section = section if section in PREFIX else "strategies"
        entry = Entry(f"{PREFIX[section]}-{self.next_id:05d}", section, content)
        self.next_id += 1
        self.entries.append(entry)
        return entry

    def tag(self, entry_id: str, tag: str) -> bool:
        for e in self.entries:
            if e.id == entry_id and tag in ("helpful", "harmful"):
                setattr(e, tag, getattr(e, tag) + 1)
                return True
        return False

    def prune(self, max_entries: int, max_words: int, harmful_margin: int | None) -> list[Entry]:
        """Drop entries judged harmful more often than helpful by `harmful_margin` or more (None: never),
        then the lowest-scoring (helpful - harmful; oldest first among equals) until at most
        `max_entries` entries and `max_words` words remain. Returns what was dropped."""
        dropped = [e for e in self.entries if harmful_margin is not None and e.harmful - e.helpful >= harmful_margin]
        keep = [e for e in self.entries if e not in dropped]
        while keep and (len(keep) > max_entries or sum(len(e.content.split()) for e in keep) > max_words):
            worst = min(keep, key=lambda e: (e.helpful - e.harmful, int(e.id.split("-")[1])))
            keep.remove(worst)
            dropped.append(worst)
        self.entries = keep
        return dropped


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())
