"""``mrkafka lookup``: a key in a finished output, or in a running application's state."""

from __future__ import annotations

import sys

import click

from mrkafka.cli.base import debug_option
from mrkafka.core.json import text_bytes
from mrkafka.settings import (
    StreamSettings,
)


@click.command("lookup", short_help="Print the value of a key in a finished output, or a running application.")
@click.argument("where_and_key", nargs=-1, required=True, metavar="[OUTPUT_DIR] KEY")
@click.option("--fuzzy", type=click.IntRange(0, 10), default=0, help="Also keys within N edits (Levenshtein).")
@click.option("--limit", type=click.IntRange(1), help="With --fuzzy: print only the best N keys [default: all].")
@click.option("--application-id", help="Ask this running stream application's state instead of an output.")
@click.option(
    "--state-dir",
    default=StreamSettings.state_dir,
    show_default=True,
    help="With --application-id: the state dir the application runs with.",
)
@debug_option
def lookup_command(
    where_and_key: tuple[str, ...], fuzzy: int, limit: int | None, application_id: str | None, state_dir: str
) -> None:
    """Print the value of KEY in a finished output (OUTPUT_DIR), or in the current state of a
    running stream application (--application-id APP, Kafka Streams' interactive queries):
    for prefix_index, its completions; for word count, its count.

    Lines are KEY<TAB>VALUE, the value as a text part holds it (JSON unless a number or
    text); a list value (completions) prints one line per item. With
    --fuzzy N every key within N edits is printed, nearest first, then the most frequent.

    \b
    Examples:
      mrkafka lookup out/prefix Mukesh
      mrkafka lookup out/prefix packge --fuzzy 2
      mrkafka lookup --application-id wc kafka
    """
    if application_id is not None:
        if len(where_and_key) != 1:
            raise click.UsageError("with --application-id, give only KEY")
        from mrkafka.stream.queries import query

        (key,) = where_and_key
        found = query(application_id, state_dir, key, fuzzy)[:limit]
    else:
        if len(where_and_key) != 2:
            raise click.UsageError("give OUTPUT_DIR and KEY (or --application-id APP and KEY)")
        from mrkafka.io.lookup import lookup

        output_dir, key = where_and_key
        found = lookup(output_dir, key, fuzzy, limit, note=lambda line: click.echo(line, err=True))
    for stored, _, value in found:
        for item in value if isinstance(value, list) else [value]:
            fields = item if isinstance(item, list) else [item]
            text = "\t".join(text_bytes(field).decode("utf-8", "surrogateescape") for field in fields)
            click.echo(f"{stored}\t{text}")
    if not found:
        click.echo(f"no key {key!r}" + (f" within {fuzzy} edits" if fuzzy else ""), err=True)
        sys.exit(1)
