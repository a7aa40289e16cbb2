"""``clearset report``: one static HTML page per workspace, ``WS/report/index.html``.

A section is one function registered in sections.py plus one template in templates/sections/. The
report only reads artifacts; it never computes scores.
"""

from .html import build_report

__all__ = ["build_report"]
