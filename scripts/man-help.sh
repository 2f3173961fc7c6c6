#!/bin/sh
# What `make man` hands help2man, from the checkout's launcher run on the interpreter $1.
#
#   sh scripts/man-help.sh LUA --help | --version   sapwf's own text, for help2man to read
#   sh scripts/man-help.sh LUA commands             each command's --help, as a help2man
#                                                   include file (its COMMANDS section)
#
# help2man takes a usage line's continuation only when it repeats the program name, and
# put the rest of argparse's wrapped usage under DESCRIPTION: here the usage is one line.
# It also misread the labels of options with two names (below).
# It reads only the top-level --help, so the commands' options come from the include,
# preformatted as `sapwf COMMAND --help` prints them. Both come from the command line's
# own help: nothing here is written by hand.
set -eu
lua=$1
shift
# sapwf's output goes through a file, so that its failure fails this script (set -e).
text=$(mktemp)
trap 'rm -f "$text"' EXIT

# The paragraphs after the options in the sections a man page has them in: the service key
# (read from the environment) in ENVIRONMENT, the exit codes in EXIT STATUS, the pointer to
# the guide in SEE ALSO (help2man would leave them under OPTIONS and EXAMPLES).
# One usage line: argparse indents its continuation lines under the first. And an option
# with two names and a value (-o FORMAT, --output FORMAT), which argparse writes as two
# labels on two lines beside the first two lines of its description, as one label on a
# line of its own with the description below it, as help2man reads a long label.
for_help2man() {
  awk '
    usage && /^       +[^ ]/ { sub(/^ +/, " "); line = line $0; next }
    usage { print line; usage = 0 }
    /^Usage:/ { line = $0; usage = 1; next }
    /^Service key: / { print "Environment:"; print ""; print; next }
    /^Exit codes:$/ { print "*Exit status*"; print ""; next }
    /^More: / { print "*See also*"; print ""; sub(/^More: /, "The full guide: "); print; next }
    alias != "" {
      label = substr($0, 1, margin); gsub(/^ +| +$/, "", label)
      printf "   %s %s\n%" margin "s%s\n%" margin "s%s\n", alias, label, "", text, "",
        substr($0, margin + 1)
      alias = ""; next
    }
    /^ +-[^ -][^ ]* [^ ]+, +[^ ]/ {
      match($0, /^ +-[^ ]+ [^ ]+, +/); margin = RLENGTH
      alias = substr($0, 1, margin); gsub(/^ +| +$/, "", alias)
      text = substr($0, margin + 1); next
    }
    { print }
    END { if (usage) print line }'
}

if [ "${1:-}" != commands ]; then
  "$lua" bin/sapwf "$@" > "$text"
  for_help2man < "$text"
  exit 0
fi

# The commands as --help lists them, each with its own --help (roff: backslashes and a
# leading . or ' escaped).
"$lua" bin/sapwf --help > "$text"
commands=$(sed -n '/^Commands:$/,/^$/s/^   \([a-z][a-z-]*\) .*/\1/p' "$text")
echo '[COMMANDS]'
for command in $commands; do
  echo ".SS $command"
  echo ".nf"
  "$lua" bin/sapwf "$command" --help > "$text"
  sed -e 's/\\/\\e/g' -e "s/^[.']/\\\\\\&&/" "$text"
  echo ".fi"
done
