"""The terminal UI (``reflow tui``); textual is imported only when it is opened."""
