"""The rendering toolkit every report shares: tables for the terminal and Markdown
(``tables``), self-contained offline HTML pages (``html``) and inline SVG plots (``svg``).
Each capability renders its own report with it (``evaluation.report``, ``gate.report``,
``calibrate.report``, ``audit.export``)."""
