#!/usr/bin/env python3
"""Generates ../configparser_cases_test.go: what Python 3's configparser
makes of each input below. The Go tests compare the ini package with it and
need no Python. Regenerate after changing the cases:

    cd internal/ini && python3 testdata/configparser_cases.py > configparser_cases_test.go && gofmt -w configparser_cases_test.go
"""
import configparser
import os
import sys
import tempfile

CASES = [
    ("empty file", ""),
    ("only comments and blanks", "# one\n; two\n\n   \n  # indented\n"),
    ("basic", "[a]\nx = 1\ny: 2\n"),
    ("key case folded, section case kept", "[Prod]\nApp_Name = Blog\n"),
    ("surrounding whitespace", "[a]\n  x   =   spaced value  \n\ty\t:\tv\t\n"),
    ("multi-line", "[a]\nk = first\n  second\n\tthird\n      fourth\n"),
    ("empty first line", "[a]\nk =\n  l1\n  l2\n"),
    ("blank lines inside value", "[a]\nk = 1\n\n  2\n\n\nj = 3\n"),
    ("trailing blank lines dropped", "[a]\nk = 1\n  2\n\n\n"),
    ("blank then indented key continues value", "[a]\na = 1\n\n  b = 2\n"),
    ("comments", "# c\n; c\n[a]\n# c\nk = v # not a comment\n  ; indented comment\n  # another\n  cont\n"),
    ("inline semicolon kept", "[a]\nk = v ; x\nj = v;x\n"),
    ("comment inside value after blank", "[a]\nk = 1\n\n# c\n  2\n"),
    ("unindented comment inside value", "[a]\nk = 1\n;c\n  2\n"),
    ("DEFAULT inherited", "[DEFAULT]\nd = 1\ne = 5\n[a]\nx = 2\n[b]\nd = 3\n"),
    ("DEFAULT after sections", "[a]\nx = 1\n[DEFAULT]\nd = 2\n"),
    ("DEFAULT twice", "[DEFAULT]\nd = 1\n[a]\n[DEFAULT]\ne = 2\n"),
    ("DEFAULT twice duplicate key", "[DEFAULT]\nd = 1\n[a]\n[DEFAULT]\nD = 2\n"),
    ("lower-case default is a section", "[default]\nx = 1\n"),
    ("duplicate section", "[a]\nx = 1\n[b]\n[a]\ny = 2\n"),
    ("duplicate key", "[a]\nx = 1\ny = 2\nX = 3\n"),
    ("same key in two sections", "[a]\nx = 1\n[b]\nx = 2\n"),
    ("key before section", "x = 1\n[a]\n"),
    ("comment and blank before key before section", "# hi\n\nx = 1\n[a]\n"),
    ("line without delimiter", "[a]\nfoo\n"),
    ("unindented continuation", "[a]\nsecret =\nabc\n"),
    ("empty key name equals", "[a]\n= v\n"),
    ("empty key name colon", "[a]\n  : v\n"),
    ("first delimiter splits", "[a]\nurl = http://x:80/a=b\nk: a=b\nk2 = a:b\nk3:=v\nk4 = =\n"),
    ("key with spaces", "[a]\nmy key = v\nk   :   v\n"),
    ("header trailing text", "[a] trailing\nx = 1\n[b] # c\ny = 2\n"),
    ("header with bracket", "[a]b]\nx = 1\n"),
    ("header with spaces", "[ spaced ]\nx = 1\n"),
    ("header with equals", "[a=b]\nx = 1\n"),
    ("header with colon", "[provider:default]\nprovider = local\n"),
    ("empty header", "[]\n"),
    ("empty header then text", "[] x\n"),
    ("empty header inside file", "[a]\n[]\n"),
    ("unclosed header inside file", "[a]\nx = 1\n[b\n"),
    ("unclosed header", "[a\n"),
    ("closing bracket only", "[a]\n[]]\nx = 1\n"),
    ("indented header is continuation", "[a]\nx = 1\n  [b]\ny = 2\n"),
    ("indented header after section", "[a]\n  [b]\nx = 1\n"),
    ("indented keys same level", "[a]\n  x = 1\n  y = 2\n"),
    ("deeper indented key continues", "[a]\n  x = 1\n    y = 2\n"),
    ("less indented key", "[a]\n    x = 1\n  y = 2\n"),
    ("blank after header then indented key", "[a]\n\n  x = 1\n"),
    ("CRLF", "[a]\r\nx = 1\r\n  2\r\n"),
    ("CR only", "[a]\rx = 1\r  2\r"),
    ("mixed endings", "[a]\r\nx = 1\n  2\r  3\r\n"),
    ("no final newline", "[a]\nx = 1"),
    ("tabs", "[a]\nx\t=\t1\n\t2\n"),
    ("nbsp trimmed", "[a]\nx =\u00a0v\u00a0\n"),
    ("ideographic space indent", "[a]\nx = 1\n\u30002\n"),
    ("file separator is space", "[a]\nx = v\x1c\n"),
    ("vertical tab and form feed", "[a]\nx = v\x0b\x0c\n"),
    ("non-ascii key lower-cased", "[a]\n\u00c4 = 1\n"),
    ("empty value", "[a]\nk =\nj = \n\n"),
    ("percent raw", "[a]\nx = 100%\ny = %(x)s\n"),
    ("empty sections", "[a]\n[b]\n"),
    ("value starting with bracket", "[a]\nk = [x]\n  [y]\n"),
    ("app.ini shape", "[production]\napp_name = blog\nrunner = main.py#app\nupdate_fetch =\n    /setup\n    script:bin/migrate --all\npackages = libxml2\n    libxslt1.1\n\n# comment\nservice.postgis =\n"),
    ("conf shape", "[provider:default]\nprovider = rackspace\nusername = bob\nsecret = s3cret\nimage_name = *lucid*\nsize_id = 1\nroot_authorized_keys = \n    ssh-rsa AAAA bob@x\n    ssh-ed25519 BBBB bob@y\n\n[environment]\nsilverlining_location = /x\n\n[devel]\n# postgis.dbname = foo\nfiles = ~/files/APP_NAME\n"),
    ("whitespace-only value lines", "[a]\nk = 1\n   \n\t\n  2\n"),
    ("comment keeps value open", "[a]\nk = 1\n  # c\n\n  ; d\n  2\nj = 3\n"),
    ("continuation in DEFAULT", "[DEFAULT]\nk = 1\n  2\n[a]\n"),
    ("bad line after duplicate section order", "[a]\n[a]\n"),
]


def goquote(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == '\\':
            out.append('\\\\')
        elif ch == '\n':
            out.append('\\n')
        elif ch == '\r':
            out.append('\\r')
        elif ch == '\t':
            out.append('\\t')
        elif o < 0x20 or o == 0x7f:
            out.append('\\x%02x' % o)
        elif o > 0x7e:
            out.append('\\U%08x' % o)
        else:
            out.append(ch)
    out.append('"')
    return ''.join(out)


def parse(text):
    cp = configparser.RawConfigParser()
    with tempfile.NamedTemporaryFile('w', delete=False, encoding='utf-8', newline='') as f:
        f.write(text)
        path = f.name
    try:
        cp.read(path, encoding='utf-8')
    except (configparser.MissingSectionHeaderError, configparser.DuplicateSectionError,
            configparser.DuplicateOptionError) as e:
        return None, type(e).__name__, e.lineno
    except configparser.ParsingError as e:
        return None, type(e).__name__, e.errors[0][0]
    finally:
        os.unlink(path)
    dump = []
    if cp.defaults():
        dump.append('[DEFAULT]')
        for k, v in cp.defaults().items():
            dump.append('%s=%s' % (k, goquote(v)))
    for s in cp.sections():
        dump.append('[%s]' % s)
        for k, v in cp[s].items():
            dump.append('%s=%s' % (k, goquote(v)))
    return dump, None, 0


def main():
    w = sys.stdout.write
    w('// Code generated by testdata/configparser_cases.py from Python %s configparser; DO NOT EDIT.\n\n'
      % sys.version.split()[0])
    w('package ini\n\n')
    w('var configparserCases = []configparserCase{\n')
    for name, text in CASES:
        dump, err, line = parse(text)
        w('\t{\n\t\tname: %s,\n\t\tinput: %s,\n' % (goquote(name), goquote(text)))
        if err:
            w('\t\terr: %s,\n\t\terrLine: %d,\n' % (goquote(err), line))
        else:
            w('\t\twant: []string{\n')
            for d in dump:
                w('\t\t\t%s,\n' % goquote(d))
            w('\t\t},\n')
        w('\t},\n')
    w('}\n')


main()
