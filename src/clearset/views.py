"""What a stage shows of its results, declared without rendering: cards, image tiles, tables, facts and
named plots. A stage's report hook returns a list of these; ``clearset report`` renders them (thumbnails,
sortable tables, escaping), and the review app can show the same findings. Floor 0: plain data.

    Card(3, "label issues")                              one headline number
    Tiles("Outliers", (Tile(17, note="score 5.2"), ...))  images by manifest index (a pair: (i, j))
    Table("Label issues", (Column("index"), ...), rows)   sortable, folded unless ``open``
    Facts("Dataset properties", (("imbalance", 1.4),))    name / value lines
    Plot("Confused classes", "class_graph", {...})        a plot the report knows by name
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Card:
    value: Any
    label: str


@dataclass(frozen=True)
class Tile:
    index: int | tuple[int, int]  # the manifest index of the image shown, or a pair shown side by side
    caption: str = ""
    struck: str | None = None  # shown struck through (e.g. the given label)
    bold: str | None = None  # shown in bold after an arrow (e.g. the suggested label)
    note: str | None = None  # a muted second line


@dataclass(frozen=True)
class Tiles:
    title: str
    tiles: tuple[Tile, ...]


@dataclass(frozen=True)
class Column:
    key: str
    title: str = ""
    fmt: str = ""  # a format spec for numbers (".4f"); text columns are left-aligned
    text: bool = False

    @property
    def heading(self) -> str:
        return self.title or self.key.replace("_", " ")


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[Column, ...]
    rows: tuple[dict, ...]
    total: int | None = None  # rows in the full table, when ``rows`` is its head
    open: bool = False


@dataclass(frozen=True)
class Facts:
    title: str
    items: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Plot:
    title: str
    kind: str  # a name the renderer knows (reporting.plots.PLOTS)
    data: dict = field(default_factory=dict)


View = Card | Tiles | Table | Facts | Plot
VIEWS = (Card, Tiles, Table, Facts, Plot)
