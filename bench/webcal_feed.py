#!/usr/bin/env python3
"""Feed helper for bench/webcal.sh (standard library only).

Subcommands:
  gen OUT N                     write a feed of N events (one VCALENDAR, CRLF, with
                                DTSTAMP, LAST-MODIFIED and SEQUENCE placeholders) to OUT
  serve DIR PORTFILE            serve DIR/feed.ics at /feed.ics on a free 127.0.0.1 port
                                (written to PORTFILE) with an ETag (SHA-256 of the body)
                                and 304 to a matching If-None-Match; while DIR/restamp
                                exists every request gets new DTSTAMP, LAST-MODIFIED and
                                SEQUENCE values (so a new ETag). One line per request
                                ("GET /feed.ics 200") is appended to DIR/requests.log.
  change FEED K                 change the SUMMARY of event K in FEED in place
  snapshot DIR                  print "name mtime_ns inode" for every file in DIR
  written BEFORE AFTER          how many files were written, created or removed between
                                two snapshots
  count DIR N                   exit 1 unless DIR holds N .ics files
"""

import hashlib
import http.server
import os
import sys

STAMP, LASTMOD, SEQ = "{STAMP}", "{LASTMOD}", "{SEQ}"


def gen(out, n):
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//davsync bench//feed//EN",
             "X-WR-CALNAME:Bench feed", "X-APPLE-CALENDAR-COLOR:#3366CC"]
    for k in range(int(n)):
        day = k % 365
        lines += [
            "BEGIN:VEVENT",
            "UID:feed-%06d@bench.example" % k,
            "DTSTAMP:" + STAMP,
            "LAST-MODIFIED:" + LASTMOD,
            "SEQUENCE:" + SEQ,
            "DTSTART:2026%02d%02dT%02d0000Z" % (1 + day // 31 % 12, 1 + day % 28, 8 + k % 10),
            "DURATION:PT1H",
            "SUMMARY:Feed event %d" % k,
            "DESCRIPTION:Exported event number %d of the benchmark feed\\, with a description "
            "long enough to be folded onto a second line by the exporter." % k,
            "LOCATION:Room %d" % (k % 50),
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    text = ""
    for line in lines:
        while len(line.encode()) > 75:
            text += line[:75] + "\r\n "
            line = line[75:]
        text += line + "\r\n"
    with open(out, "w", newline="") as f:
        f.write(text)


def serve(root, portfile):
    counter = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            with open(os.path.join(root, "feed.ics"), "rb") as f:
                body = f.read()
            counter[0] += 1
            if os.path.exists(os.path.join(root, "restamp")):
                stamp = "20261205T%06dZ" % (counter[0] % 240000)
                seq = str(counter[0])
            else:
                stamp, seq = "20260101T000000Z", "0"
            body = (body.replace(STAMP.encode(), stamp.encode())
                    .replace(LASTMOD.encode(), stamp.encode())
                    .replace(SEQ.encode(), seq.encode()))
            etag = '"%s"' % hashlib.sha256(body).hexdigest()[:32]
            if self.path != "/feed.ics":
                status, body = 404, b"not here"
            elif self.headers.get("If-None-Match") == etag:
                status, body = 304, b""
            else:
                status = 200
            self.send_response(status)
            self.send_header("ETag", etag)
            if status != 304:
                self.send_header("Content-Type", "text/calendar; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with open(os.path.join(root, "requests.log"), "a") as log:
                log.write("%s %s %d\n" % (self.command, self.path, status))

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    server.serve_forever()


def change(feed, k):
    with open(feed, newline="") as f:
        text = f.read()
    old = "SUMMARY:Feed event %s\r\n" % k
    assert old in text, old
    with open(feed, "w", newline="") as f:
        f.write(text.replace(old, "SUMMARY:Feed event %s (moved)\r\n" % k))


def snapshot(d):
    for name in sorted(os.listdir(d)):
        st = os.stat(os.path.join(d, name))
        print(name, st.st_mtime_ns, st.st_ino)


def written(before, after):
    def load(p):
        with open(p) as f:
            return {l.split(" ", 1)[0]: l for l in f}
    a, b = load(before), load(after)
    print(sum(1 for k in set(a) | set(b) if a.get(k) != b.get(k)))


def count(d, n):
    have = sum(1 for x in os.listdir(d) if x.endswith(".ics"))
    if have != int(n):
        sys.exit("%s holds %d .ics files, expected %s" % (d, have, n))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"gen": gen, "serve": serve, "change": change, "snapshot": snapshot,
     "written": written, "count": count}[cmd](*args)
