#!/usr/bin/env python3
"""Test-data helper for bench/vdir.sh (standard library only).

Subcommands:
  gen DIR N [--seed S]          write N realistic VEVENT items (<uid>.ics, CRLF,
                                folded at 75 octets) into DIR, dated a day back
  modify DIR SIDE               rewrite the deterministic 50-item selection for
                                SIDE in place: side "a" gets a new SUMMARY,
                                side "b" a new DESCRIPTION
  verify DIR_A DIR_B N [--changed]
                                both sides hold N .ics files with the same UIDs;
                                with --changed, every changed item carries its
                                new SUMMARY / DESCRIPTION on both sides
  measure OUT -- CMD...         run CMD, write "<wall seconds> <peak RSS KiB>"
                                to OUT (fallback when GNU time is missing)

Items are selected by UID, not by file name, so the selection is the same
whatever names a sync tool gives the files it creates.
"""

import argparse
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

CRLF = "\r\n"
SIDES = ("a", "b")
N_CHANGES = 100  # 50 per side

VTIMEZONE_BERLIN = [
    "BEGIN:VTIMEZONE",
    "TZID:Europe/Berlin",
    "X-LIC-LOCATION:Europe/Berlin",
    "BEGIN:DAYLIGHT",
    "TZOFFSETFROM:+0100",
    "TZOFFSETTO:+0200",
    "TZNAME:CEST",
    "DTSTART:19700329T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
    "END:DAYLIGHT",
    "BEGIN:STANDARD",
    "TZOFFSETFROM:+0200",
    "TZOFFSETTO:+0100",
    "TZNAME:CET",
    "DTSTART:19701025T030000",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
    "END:STANDARD",
    "END:VTIMEZONE",
]

WORDS = (
    "quarterly review budget planning roadmap sync standup retro design "
    "deadline customer onboarding migration release notes agenda minutes "
    "follow-up workshop dependency upgrade schedule availability room "
    "projector catering travel visa invoice contract renewal security audit "
    "backlog grooming prototype feedback interview candidate offsite "
    "documentation handover café naïve résumé Zürich Malmö"
).split()

SUMMARIES = (
    "Team standup", "1:1 with manager", "Quarterly planning", "Dentist",
    "Sprint retrospective", "Lunch with Alex", "Release sync",
    "Customer call", "Board meeting", "Yoga class", "Design review",
    "Flight to Zürich", "Budget review", "Interview: backend role",
)
LOCATIONS = (
    "Room 4.12", "Video call", "Main office\\, 3rd floor", "Café Central",
    "Hauptbahnhof", "Conference room B", "Home",
)
RRULES = (
    "FREQ=WEEKLY;BYDAY=MO,WE,FR",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU",
    "FREQ=MONTHLY;BYMONTHDAY=15;COUNT=12",
    "FREQ=DAILY;COUNT=10",
    "FREQ=YEARLY",
)


def fold(line):
    """Fold one content line at 75 octets (RFC 5545 3.1), never splitting
    a UTF-8 sequence."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line + CRLF
    out = []
    start = 0
    limit = 75  # the first line holds 75 octets, continuations 74 + space
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1  # do not cut inside a multi-byte character
        out.append(data[start:end].decode("utf-8"))
        start = end
        limit = 74
    return (CRLF + " ").join(out) + CRLF


def escape_text(s):
    return (s.replace("\\", "\\\\").replace(";", "\\;")
            .replace(",", "\\,").replace("\n", "\\n"))


def fmt_utc(dt):
    return dt.strftime("%Y%m%dT%H%M%SZ")


def fmt_local(dt):
    return dt.strftime("%Y%m%dT%H%M%S")


def make_item(rng, idx):
    uid = "%s@bench.example" % uuid.UUID(int=rng.getrandbits(128), version=4)
    with_tz = rng.random() < 0.2
    with_alarm = rng.random() < 0.3
    with_rrule = rng.random() < 0.1
    base = datetime(2025, 1, 6, tzinfo=timezone.utc)
    start = base + timedelta(days=rng.randrange(365),
                             minutes=15 * rng.randrange(8 * 4, 19 * 4))
    end = start + timedelta(minutes=rng.choice((15, 30, 45, 60, 90, 120)))
    stamp = base - timedelta(seconds=rng.randrange(10_000_000))

    head = ["BEGIN:VCALENDAR", "VERSION:2.0",
            "PRODID:-//davsync bench//gen_items.py//EN", "CALSCALE:GREGORIAN"]
    if with_tz:
        head += VTIMEZONE_BERLIN
    ev = ["BEGIN:VEVENT", "UID:" + uid, "DTSTAMP:" + fmt_utc(stamp),
          "CREATED:" + fmt_utc(stamp), "LAST-MODIFIED:" + fmt_utc(stamp)]
    if with_tz:
        ev += ["DTSTART;TZID=Europe/Berlin:" + fmt_local(start),
               "DTEND;TZID=Europe/Berlin:" + fmt_local(end)]
    else:
        ev += ["DTSTART:" + fmt_utc(start), "DTEND:" + fmt_utc(end)]
    if with_rrule:
        ev.append("RRULE:" + rng.choice(RRULES))
    ev += ["SUMMARY:%s #%d" % (escape_text(rng.choice(SUMMARIES)), idx),
           "LOCATION:" + rng.choice(LOCATIONS),
           "STATUS:CONFIRMED", "SEQUENCE:0", "TRANSP:OPAQUE",
           "CLASS:PUBLIC", "CATEGORIES:Work,Bench"]
    tail = []
    if with_alarm:
        tail += ["BEGIN:VALARM", "ACTION:DISPLAY",
                 "DESCRIPTION:Reminder", "TRIGGER:-PT%dM" % rng.choice((5, 10, 15, 30)),
                 "END:VALARM"]
    tail += ["END:VEVENT", "END:VCALENDAR"]

    fixed = sum(len(fold(line).encode()) for line in head + ev + tail)
    # aim at 600-1200 bytes in total; the DESCRIPTION fills the gap
    # (a VTIMEZONE item is already large, so it gets a shorter text)
    target = rng.randrange(max(600, fixed + 100), max(1200, fixed + 150))
    want = target - fixed - len("DESCRIPTION:") - 2
    words = []
    size = 0
    while size < want:
        w = rng.choice(WORDS)
        words.append(w)
        size += len(w.encode()) + 1
    text = " ".join(words)
    while len(text.encode()) > want and len(text) > 1:
        text = text[:-1]
    text = text.rstrip()
    if "," in text or ";" in text:
        text = escape_text(text)
    ev.append("DESCRIPTION:" + text[:1].upper() + text[1:])
    lines = head + ev + tail
    return uid, "".join(fold(line) for line in lines)


def cmd_gen(args):
    rng = random.Random(args.seed)
    os.makedirs(args.dir, exist_ok=True)
    # A real calendar's items were written long before a sync looks at
    # them; files modified a moment ago look "racy" to a tool that trusts
    # mtimes (davsync re-reads those) and would skew the no-op figures.
    old = time.time() - 86400
    total = 0
    for i in range(args.n):
        uid, text = make_item(rng, i)
        data = text.encode("utf-8")
        total += len(data)
        path = os.path.join(args.dir, uid + ".ics")
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (old, old))
    print("generated %d items, %d bytes (avg %d) in %s"
          % (args.n, total, total // max(args.n, 1), args.dir))


# ---------------------------------------------------------------- parsing

def unfold(data):
    lines = []
    for raw in data.decode("utf-8").split("\n"):
        raw = raw.rstrip("\r")
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
        elif raw:
            lines.append(raw)
    return lines


def prop_name(line):
    cut = len(line)
    for sep in (":", ";"):
        p = line.find(sep)
        if p != -1:
            cut = min(cut, p)
    return line[:cut].upper()


def event_props(lines):
    """Properties of the VEVENT itself (not of a nested VALARM)."""
    stack, props = [], {}
    for line in lines:
        name = prop_name(line)
        if name == "BEGIN":
            stack.append(line.split(":", 1)[1].upper())
        elif name == "END":
            if stack:
                stack.pop()
        elif stack and stack[-1] == "VEVENT" and name not in props:
            props[name] = line.split(":", 1)[1] if ":" in line else ""
    return props


def scan(directory):
    """UID -> (path, VEVENT properties) for every .ics file in directory."""
    items = {}
    if not os.path.isdir(directory):
        return items
    for name in os.listdir(directory):
        if not name.endswith(".ics"):
            continue
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
            props = event_props(unfold(f.read()))
        uid = props.get("UID")
        if uid is None:
            sys.exit("gen_items: no UID in %s" % path)
        if uid in items:
            sys.exit("gen_items: UID %s twice in %s" % (uid, directory))
        items[uid] = (path, props)
    return items


def selection(uids):
    """The deterministic changed items: 100 UIDs evenly spread over the
    sorted UID list, alternately assigned to side a and side b."""
    uids = sorted(uids)
    n = len(uids)
    picked = {}
    for k in range(N_CHANGES):
        i = k * n // N_CHANGES
        if n and uids[i] not in picked:
            picked[uids[i]] = SIDES[k % 2]
    return {s: sorted(u for u, side in picked.items() if side == s)
            for s in SIDES}


def new_value(side, uid):
    if side == "a":
        return "SUMMARY", "Changed on side A " + uid.split("-")[0]
    return ("DESCRIPTION", "Changed on side B " + uid.split("-")[0] +
            ": the agenda was moved to the next meeting\\, see notes" + " ." * 20)


def rewrite(path, prop, value):
    with open(path, "r+b") as f:
        lines = unfold(f.read())
        out, stack, done = [], [], False
        for line in lines:
            name = prop_name(line)
            if name == "BEGIN":
                stack.append(line.split(":", 1)[1].upper())
            elif name == "END" and stack:
                stack.pop()
            elif (not done and name == prop and stack
                  and stack[-1] == "VEVENT"):
                line = prop + ":" + value
                done = True
            out.append(line)
        if not done:
            sys.exit("gen_items: no %s in %s" % (prop, path))
        data = "".join(fold(line) for line in out).encode("utf-8")
        f.seek(0)
        f.write(data)
        f.truncate()


def cmd_modify(args):
    items = scan(args.dir)
    chosen = selection(items)[args.side]
    for uid in chosen:
        prop, value = new_value(args.side, uid)
        rewrite(items[uid][0], prop, value)
    print("modified %d items on side %s" % (len(chosen), args.side.upper()))


def cmd_verify(args):
    a, b = scan(args.dir_a), scan(args.dir_b)
    problems = ["%s is not a directory" % d for d in (args.dir_a, args.dir_b)
                if not os.path.isdir(d)]
    for label, items in (("A", a), ("B", b)):
        if len(items) != args.n:
            problems.append("side %s holds %d items, expected %d"
                            % (label, len(items), args.n))
    if set(a) != set(b):
        problems.append("UID sets differ: %d only on A, %d only on B"
                        % (len(set(a) - set(b)), len(set(b) - set(a))))
    if args.changed:
        sel = selection(set(a) | set(b))
        for side in SIDES:
            for uid in sel[side]:
                prop, value = new_value(side, uid)
                for label, items in (("A", a), ("B", b)):
                    got = items.get(uid, (None, {}))[1].get(prop)
                    if got != value:
                        problems.append("%s of %s on side %s is %r, expected %r"
                                        % (prop, uid, label, got, value))
        count = sum(len(v) for v in sel.values())
    for p in problems[:10]:
        print("verify: " + p, file=sys.stderr)
    if problems:
        sys.exit("verify: FAILED (%d problems)" % len(problems))
    print("verify: ok, %d items on each side%s"
          % (args.n, ", %d changes propagated" % count if args.changed else ""))


def cmd_measure(args):
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB
    with open(args.out, "w") as f:
        f.write("%.3f %d\n" % (wall, rss))
    sys.exit(rc)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("n", type=int)
    g.add_argument("--seed", type=int, default=20250101)
    g.set_defaults(func=cmd_gen)
    m = sub.add_parser("modify")
    m.add_argument("dir")
    m.add_argument("side", choices=SIDES)
    m.set_defaults(func=cmd_modify)
    v = sub.add_parser("verify")
    v.add_argument("dir_a")
    v.add_argument("dir_b")
    v.add_argument("n", type=int)
    v.add_argument("--changed", action="store_true")
    v.set_defaults(func=cmd_verify)
    t = sub.add_parser("measure")
    t.add_argument("out")
    t.add_argument("cmd", nargs=argparse.REMAINDER)
    t.set_defaults(func=cmd_measure)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
