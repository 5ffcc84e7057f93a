"""``planmon config``: show the settings in force and check they are valid."""

from __future__ import annotations

import argparse
import json

# Stands for the settings table in the epilogs below, which _SettingsHelp writes only when help is
# shown: building it imports the settings model (pydantic), which `planmon --help` does not need.
SETTINGS_EPILOG = "(the PLANMON_* settings)"


class _SettingsHelp(argparse.RawDescriptionHelpFormatter):
    """Help whose epilog lists every setting, its environment variable and default."""

    def add_text(self, text: str | None) -> None:
        if text == SETTINGS_EPILOG:
            from planmon.config import describe_settings

            text = "settings (environment variable, default):\n" + "\n".join(
                f"  {name:<44} {default or '(unset)':<16} {help_text}"
                for name, default, help_text in describe_settings()
            )
        super().add_text(text)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "config",
        help="show and validate planmon's settings",
        description="Validate the PLANMON_* settings and print the values in force.",
        epilog=SETTINGS_EPILOG,
        formatter_class=_SettingsHelp,
    )
    config_commands = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_commands.add_parser(
        "show",
        help="print the validated settings",
        epilog=SETTINGS_EPILOG,
        formatter_class=_SettingsHelp,
    )
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    from planmon.config import load_settings

    settings = load_settings()
    values = settings.model_dump(mode="json")
    if args.json:
        print(json.dumps(values, indent=2, sort_keys=True))
    else:
        for name, value in values.items():
            print(f"{name} = {value}")
    return 0
