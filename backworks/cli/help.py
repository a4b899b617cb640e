"""Help conventions every `backworks` command shares: `-h` and command summaries never cut short."""
from __future__ import annotations

import click

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class FullSummaryGroup(click.Group):
    """A command group listing each command's whole first help sentence (click cuts it at ~45 chars)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the command list with untruncated summaries (the formatter wraps long ones)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
