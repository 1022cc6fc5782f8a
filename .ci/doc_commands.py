"""The shell commands the documentation shows a reader, and whether CI runs each of them.

A command is shown when it is a line of a ```sh block (lines ending in a backslash joined, a
trailing `  # comment` dropped) or an inline `code` span in a table row that starts with a
command (cargo, bash, docker, kubectl, curl; after any VAR=value assignments), in README.md or
any Markdown file under docs/. Prose may name commands in passing; what a reader is meant to run
goes in a block or a table.

  doc_commands.py list             print each command with the file and line that shows it
  doc_commands.py check [SCRIPT...] fail unless every command is run by one of the scripts
                                   (by default CI's: SCRIPTS below)

A script runs a command when the command's text is in it, outside a comment line, possibly with
more arguments after it (a shorter run, a report elsewhere). A placeholder in the docs (`<a
master, e.g. redis-node-1>`) matches a variable in the script (`{holder}`, `$victim`). `$store`
in a script stands for each network store, as its loops run them.
"""
import glob
import re
import sys

COMMANDS = ("cargo", "bash", "docker", "kubectl", "curl")
STORES = ("redis", "postgres", "memcached")
SCRIPTS = (".ci/run", ".ci/docs.sh", ".ci/compose.sh", ".ci/compose/journeys.py")


def documents():
    return ["README.md"] + sorted(glob.glob("docs/**/*.md", recursive=True))


def shown(path):
    """(line number, command) for each command the file shows."""
    text = open(path).read()
    found = []
    for block in re.finditer(r"^```sh\n(.*?)^```", text, re.S | re.M):
        first = text[: block.start()].count("\n") + 2
        pending, start = "", None
        for offset, line in enumerate(block.group(1).splitlines()):
            if start is None:
                start = first + offset
            pending += line
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip() + " "
                continue
            command = re.split(r"\s+#(?:\s|$)", pending)[0].strip()
            if command and not command.startswith("#"):
                found.append((start, re.sub(r"\s+", " ", command)))
            pending, start = "", None
    outside = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    for number, line in enumerate(outside.splitlines(), 1):
        if not line.startswith("|"):
            continue
        for span in re.findall(r"`([^`]+)`", line):
            program = re.sub(r"^(\w+=\S*\s+)*", "", span).split(" ")[0]
            if program in COMMANDS:
                found.append((number, span))
    return found


def runnable_text(scripts):
    """The scripts' text without comment lines, continued lines joined, `$store` loops unrolled."""
    text = ""
    for script in scripts:
        for line in open(script):
            if not line.lstrip().startswith("#"):
                text += line
    text = re.sub(r"\s*\\\n\s*", " ", text)
    return text + "".join(text.replace("$store", store) for store in STORES)


def pattern(command):
    """A regex for the command as a script writes it: placeholders match any variable."""
    variable = r"(?:\{[^}]+\}|\$\{?\w+\}?|\"\$\{?\w+\}?\")"
    parts = re.split(r"<[^>]+>", command)
    return variable.join(re.escape(part) for part in parts)


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("list", "check"):
        sys.exit(__doc__)
    commands = [(path, number, command) for path in documents() for number, command in shown(path)]
    if sys.argv[1] == "list":
        for path, number, command in commands:
            print(f"{path}:{number}: {command}")
        return
    scripts = sys.argv[2:] or SCRIPTS
    text = runnable_text(scripts)
    missing = [c for c in commands if not re.search(pattern(c[2]), text)]
    if not commands:
        sys.exit("no commands found in the docs: the extraction is broken")
    for path, number, command in missing:
        print(f"{path}:{number}: not run by CI: {command}", file=sys.stderr)
    if missing:
        sys.exit(
            f"{len(missing)} of {len(commands)} commands the docs show are not run by CI: "
            f"run each in {' or '.join(scripts)}, as the docs write it"
        )
    print(f"{len(commands)} commands shown in {', '.join(documents())}: each is run by CI")


if __name__ == "__main__":
    main()
