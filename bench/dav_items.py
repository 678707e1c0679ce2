#!/usr/bin/env python3
"""Test-data helper for bench/dav.sh (run with the bench venv's Python,
which has vobject through Radicale).

Subcommands:
  fill DATA_DIR USER N_EVENTS N_CARDS
        write Radicale multifilesystem storage under DATA_DIR:
        collection-root/USER/bench-cal/ (N_EVENTS VEVENTs, <uid>.ics) and
        collection-root/USER/bench-book/ (N_CARDS vCard 3.0, <uid>.vcf), each
        with its .Radicale.props. Every item is stored as Radicale itself
        would store a PUT body (vobject's serialization), dated a day back.
  count-hrefs EXT
        read a PROPFIND multistatus from stdin, print how many hrefs end
        with EXT
  pick DATA_DIR USER COLL ROUND N
        print N hrefs of collection COLL for edit round ROUND (deterministic,
        rounds never pick the same item)
  edit FILE KIND MARKER
        rewrite the item in FILE (KIND "event": SUMMARY; "card": NOTE) so the
        property holds MARKER; prints its UID
  verify LOCAL_CAL LOCAL_BOOK DATA_DIR USER N_EVENTS N_CARDS MARKERS
        the local vdir collections hold exactly the server's items: N_EVENTS
        .ics / N_CARDS .vcf files, the same UIDs, each item with the same
        content as on the server (unfolded, line order and CRLF ignored),
        and every "UID<TAB>MARKER" line of MARKERS is in the local item
"""

import json
import os
import random
import sys
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_items  # noqa: E402  (same directory)

CAL = "bench-cal"
BOOK = "bench-book"

FIRST = ("Anna Ben Chloé Dmitri Elif Farid Greta Hiro Ines Jonas Kai Lena "
         "Mateo Nora Oskar Priya Quentin Rosa Sven Tomás Ute Vera Wei Xenia "
         "Yusuf Zoë").split()
LAST = ("Müller Schmidt Novak García Rossi Dubois Jansen Kowalski Nielsen "
        "Silva Yilmaz Tanaka Larsen O'Brien Horvat Weber Petrov Costa Lind "
        "Berg Fischer Moreau").split()
ORGS = ("ACME Corp", "Globex", "Initech", "Umbrella", "Stark Industries",
        "Wayne Enterprises", "Hooli", "Vandelay Industries")
TITLES = ("Engineer", "Manager", "Designer", "Accountant", "Consultant",
          "Director", "Analyst")
CITIES = (("Berlin", "10115", "Germany"), ("Zürich", "8001", "Switzerland"),
          ("Malmö", "211 20", "Sweden"), ("Lyon", "69001", "France"),
          ("Porto", "4000-001", "Portugal"))


def make_card(rng, idx):
    uid = "%08x-%04x-4%03x-a%03x-%012x" % (
        rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
        rng.getrandbits(12), rng.getrandbits(48))
    first, last = rng.choice(FIRST), rng.choice(LAST)
    org = rng.choice(ORGS)
    city, zipc, country = rng.choice(CITIES)
    mail = "%s.%s@%s.example" % (first.lower(), last.lower().replace("'", ""),
                                 org.split()[0].lower())
    rev = time.strftime("%Y%m%dT%H%M%SZ",
                        time.gmtime(1735689600 - rng.randrange(10_000_000)))
    lines = ["BEGIN:VCARD", "VERSION:3.0",
             "PRODID:-//davsync bench//dav_items.py//EN", "UID:" + uid,
             "FN:%s %s" % (first, last), "N:%s;%s;;;" % (last, first),
             "ORG:" + gen_items.escape_text(org),
             "TITLE:" + rng.choice(TITLES),
             "EMAIL;TYPE=INTERNET,WORK:" + mail,
             "TEL;TYPE=CELL:+49 151 %07d" % rng.randrange(10**7),
             "ADR;TYPE=WORK:;;Hauptstraße %d;%s;;%s;%s"
             % (rng.randrange(1, 200), city, zipc, country)]
    if rng.random() < 0.3:
        lines.append("BDAY:%04d-%02d-%02d" % (rng.randrange(1950, 2005),
                                              rng.randrange(1, 13),
                                              rng.randrange(1, 29)))
    words = " ".join(rng.choice(gen_items.WORDS)
                     for _ in range(rng.randrange(5, 40)))
    lines += ["NOTE:Contact #%d: %s" % (idx, gen_items.escape_text(words)),
              "CATEGORIES:Bench", "REV:" + rev, "END:VCARD"]
    return uid, "".join(gen_items.fold(line) for line in lines)


def radicale_form(text):
    """The text Radicale stores for a PUT of TEXT (vobject's serialization)."""
    import vobject  # from the bench venv (a Radicale dependency)
    return vobject.readOne(text).serialize()


def cmd_fill(data_dir, user, n_events, n_cards):
    root = os.path.join(data_dir, "collection-root", user)
    old = time.time() - 86400
    kinds = ((CAL, ".ics", "VCALENDAR", int(n_events), gen_items.make_item,
              20250101),
             (BOOK, ".vcf", "VADDRESSBOOK", int(n_cards), make_card, 20250202))
    for coll, ext, tag, n, make, seed in kinds:
        d = os.path.join(root, coll)
        os.makedirs(d)
        with open(os.path.join(d, ".Radicale.props"), "w") as f:
            json.dump({"tag": tag}, f)
        rng = random.Random(seed)
        total = 0
        for i in range(n):
            uid, text = make(rng, i)
            data = radicale_form(text).encode("utf-8")
            total += len(data)
            path = os.path.join(d, uid + ext)
            with open(path, "wb") as f:
                f.write(data)
            os.utime(path, (old, old))
        print("wrote %d items (%d bytes, avg %d) to %s"
              % (n, total, total // max(n, 1), d))


def cmd_count_hrefs(ext):
    tree = ET.parse(sys.stdin)
    n = sum(1 for h in tree.iter("{DAV:}href")
            if (h.text or "").strip().endswith(ext))
    print(n)


def cmd_pick(data_dir, user, coll, rnd, n):
    d = os.path.join(data_dir, "collection-root", user, coll)
    names = sorted(x for x in os.listdir(d) if not x.startswith("."))
    rnd, n = int(rnd), int(n)
    # spread over the collection, shifted by one per round
    step = max(len(names) // n, 1)
    for k in range(n):
        print(names[(k * step + rnd) % len(names)])


def cmd_edit(path, kind, marker):
    prop = {"event": "SUMMARY", "card": "NOTE"}[kind]
    with open(path, "rb") as f:
        lines = gen_items.unfold(f.read())
    out, done, uid, depth = [], False, None, []
    inner = "VEVENT" if kind == "event" else "VCARD"
    for line in lines:
        name = gen_items.prop_name(line)
        if name == "BEGIN":
            depth.append(line.split(":", 1)[1].upper())
        elif name == "END" and depth:
            depth.pop()
        elif depth and depth[-1] == inner:
            if name == "UID" and uid is None:
                uid = line.split(":", 1)[1]
            if name == prop and not done:
                line = prop + ":" + marker
                done = True
        out.append(line)
    if not done or uid is None:
        sys.exit("dav_items: no %s/UID in %s" % (prop, path))
    with open(path, "wb") as f:
        f.write("".join(gen_items.fold(x) for x in out).encode("utf-8"))
    print(uid)


def items_of(directory, ext):
    """UID -> normalized content (sorted unfolded lines) of DIRECTORY/*EXT."""
    items = {}
    if not os.path.isdir(directory):
        return items, ["%s is not a directory" % directory]
    problems = []
    for name in os.listdir(directory):
        if not name.endswith(ext) or name.startswith("."):
            continue
        with open(os.path.join(directory, name), "rb") as f:
            lines = gen_items.unfold(f.read())
        uids = [x.split(":", 1)[1] for x in lines
                if gen_items.prop_name(x) == "UID"]
        if not uids:
            problems.append("no UID in %s/%s" % (directory, name))
            continue
        if uids[0] in items:
            problems.append("UID %s twice in %s" % (uids[0], directory))
        items[uids[0]] = sorted(lines)
    return items, problems


def cmd_verify(local_cal, local_book, data_dir, user, n_events, n_cards,
               markers_file):
    root = os.path.join(data_dir, "collection-root", user)
    problems = []
    markers = {}
    if os.path.exists(markers_file):
        with open(markers_file) as f:
            for row in f:
                if row.strip():
                    uid, marker = row.rstrip("\n").split("\t", 1)
                    markers[uid] = marker
    found = 0
    for label, local, coll, ext, n in (
            ("events", local_cal, CAL, ".ics", int(n_events)),
            ("cards", local_book, BOOK, ".vcf", int(n_cards))):
        mine, p1 = items_of(local, ext)
        theirs, p2 = items_of(os.path.join(root, coll), ext)
        problems += p1 + p2
        if len(theirs) != n:
            problems.append("server holds %d %s, expected %d"
                            % (len(theirs), label, n))
        if len(mine) != n:
            problems.append("local vdir %s holds %d %s, expected %d"
                            % (local, len(mine), label, n))
        missing, extra = set(theirs) - set(mine), set(mine) - set(theirs)
        if missing or extra:
            problems.append("%s: %d UIDs only on the server, %d only local"
                            % (label, len(missing), len(extra)))
        differ = [u for u in set(mine) & set(theirs) if mine[u] != theirs[u]]
        if differ:
            problems.append("%s: %d items differ from the server's, e.g. %s"
                            % (label, len(differ), sorted(differ)[0]))
        for uid, marker in markers.items():
            if uid in theirs or uid in mine:
                found += 1
                if not any(marker in line for line in mine.get(uid, [])):
                    problems.append("%s: edit %r of %s did not arrive"
                                    % (label, marker, uid))
    if found != len(markers):
        problems.append("%d edited UIDs not found at all"
                        % (len(markers) - found))
    for p in problems[:10]:
        print("verify: " + p, file=sys.stderr)
    if problems:
        sys.exit("verify: FAILED (%d problems)" % len(problems))
    print("verify: ok, %s events + %s cards match the server, %d edits present"
          % (n_events, n_cards, len(markers)))


def main():
    argv = sys.argv[1:]
    cmds = {"fill": (cmd_fill, 4), "count-hrefs": (cmd_count_hrefs, 1),
            "pick": (cmd_pick, 5), "edit": (cmd_edit, 3),
            "verify": (cmd_verify, 7)}
    if not argv or argv[0] not in cmds or len(argv) - 1 != cmds[argv[0]][1]:
        sys.exit(__doc__)
    func, _ = cmds[argv[0]]
    func(*argv[1:])


if __name__ == "__main__":
    main()
