#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every relative link in README.md and docs/*.md must lead somewhere: the
file or directory it names exists, and an anchor (#section) is a heading of
that Markdown file (GitHub's anchors: lower case, punctuation dropped, spaces
to '-', a repeated heading gets -1, -2 ...). Links in code are not links.
Links to other sites (http:, https:, mailto:) are not checked.
  check_links.py SOURCE_DIR
Prints one line per broken link (FILE:LINE: ...) and exits 1 if there is any.
"""
import os
import re
import sys

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def slug(title):
    """The anchor GitHub gives a heading."""
    text = re.sub(r"`|\*\*|\[|\]\([^)]*\)", "", title).strip().lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def prose_lines(path):
    """(line number, text) of the lines outside fenced code, inline code removed."""
    fenced = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
                continue
            if not fenced:
                yield number, re.sub(r"`[^`]*`", "", line)


def anchors(path, cache={}):
    if path not in cache:
        found, seen = set(), {}
        for _, line in prose_lines(path):
            for name in HTML_ANCHOR.findall(line):
                found.add(name)
        fenced = False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.lstrip().startswith(("```", "~~~")):
                    fenced = not fenced
                    continue
                m = None if fenced else HEADING.match(line)
                if m:
                    base = slug(m.group(2))
                    n = seen.get(base, 0)
                    seen[base] = n + 1
                    found.add(base if n == 0 else "%s-%d" % (base, n))
        cache[path] = found
    return cache[path]


def check(source_dir):
    files = [os.path.join(source_dir, "README.md")]
    docs = os.path.join(source_dir, "docs")
    files += sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))
    problems, links = [], 0
    for path in files:
        where = os.path.relpath(path, source_dir)
        for number, line in prose_lines(path):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # another site
                links += 1
                file_part, _, anchor = target.partition("#")
                linked = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
                if not os.path.exists(linked):
                    problems.append("%s:%d: %s: no such file or directory" % (where, number, target))
                elif anchor and linked.endswith(".md") and anchor not in anchors(linked):
                    problems.append("%s:%d: %s: no heading with anchor #%s in %s" %
                                    (where, number, target, anchor, os.path.relpath(linked, source_dir)))
    for p in problems:
        print(p)
    print("links: %d relative link(s) in %d file(s), %d broken" % (links, len(files), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(check(sys.argv[1]))
