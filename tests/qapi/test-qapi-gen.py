#!/usr/bin/env python3
"""scripts/qapi-gen: schema errors, outputs, and the real schema vs QEMU.

- Bad schemas, one per rule the generator enforces: each must fail with
  exit status 1 and exactly "FILE:LINE: message" on stderr, the line being
  where the problem is (the member, key or value, not just the expression).
- Good schemas: the output files, rewrite-only-on-change, -p and -B.
- qapi/qapi-schema.json against QEMU 7.2 (when qemu-system-x86_64 is
  installed): for every command and event both have, the argument and
  return types must agree member by member (names, optionality, JSON
  types, enum values), resolved through both introspection replies.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402

GEN = os.path.join(xtest.ROOT, 'scripts', 'qapi-gen')
SCHEMA = os.path.join(xtest.ROOT, 'qapi', 'qapi-schema.json')
TEST_SCHEMA = os.path.join(xtest.ROOT, 'tests', 'qapi',
                           'qapi-schema-test.json')
QEMU = shutil.which('qemu-system-x86_64')


def gen(*args):
    return subprocess.run([sys.executable, GEN] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=120)


# (name, {file: text}, (file, line), message).  The schema is 'schema.json'.
# Texts are dedented; line numbers count from 1 in the dedented text.
BAD = [
    # -- lexical and syntax errors
    ('unterminated-string', {'schema.json': """
        { 'enum': 'Foo',
          'data': [ 'a ] }
        """}, ('schema.json', 3), "missing terminating \"'\""),
    ('double-quotes', {'schema.json': """
        { "enum": 'Foo', 'data': [] }
        """}, ('schema.json', 2), 'strings are single-quoted in QAPI schemas'),
    ('stray-word', {'schema.json': """
        { 'enum': 'Foo',
          'data': [ null ] }
        """}, ('schema.json', 3), "stray 'null'"),
    ('stray-char', {'schema.json': """
        { 'enum': 'Foo', 'data': [ 'a' ] } ;
        """}, ('schema.json', 2), "stray ';'"),
    ('missing-comma', {'schema.json': """
        { 'enum': 'Foo'
          'data': [] }
        """}, ('schema.json', 3), "expected ',' or '}', got string 'data'"),
    ('missing-colon', {'schema.json': """
        { 'enum' 'Foo' }
        """}, ('schema.json', 2),
     "expected ':' after key 'enum', got string 'Foo'"),
    ('duplicate-key', {'schema.json': """
        { 'struct': 'Foo',
          'data': { 'a': 'int',
                    'a': 'str' } }
        """}, ('schema.json', 4), "duplicate key 'a'"),
    ('top-level-array', {'schema.json': """
        # a comment
        [ 'x' ]
        """}, ('schema.json', 3), "expected '{' to start an expression, "
     "got '['"),
    ('eof-in-object', {'schema.json': """
        { 'struct': 'Foo',
        """}, ('schema.json', 3), "expected a string key or '}', got end of "
     "file"),
    ('unknown-escape', {'schema.json': """
        { 'enum': 'Foo', 'data': [ 'a\\n' ] }
        """}, ('schema.json', 2), 'unknown escape \\n'),
    ('non-ascii-string', {'schema.json': """
        { 'enum': 'Foo', 'data': [ 'caf\u00e9' ] }
        """}, ('schema.json', 2), 'funny character in string'),
    ('number-value', {'schema.json': """
        { 'enum': 'Foo', 'data': [ 1 ] }
        """}, ('schema.json', 2), "stray '1'"),
    ('doc-unterminated', {'schema.json': """
        { 'enum': 'Foo', 'data': [ 'a' ] }
        ##
        # @Bar:
        #"""}, ('schema.json', 3), 'documentation comment is not terminated'),
    ('doc-line-without-hash', {'schema.json': """
        ##
        # @Foo:

        ##
        { 'enum': 'Foo', 'data': [ 'a' ] }
        """}, ('schema.json', 4),
     "documentation comment line must start with '#'"),

    # -- expressions
    ('no-meta-key', {'schema.json': """
        { 'data': {} }
        """}, ('schema.json', 2), "expression must have exactly one of "
     "'include', 'pragma', 'enum', 'struct', 'union', 'alternate', "
     "'command', 'event'"),
    ('two-meta-keys', {'schema.json': """
        { 'struct': 'Foo', 'enum': 'Bar', 'data': {} }
        """}, ('schema.json', 2), "expression must have exactly one of "
     "'include', 'pragma', 'enum', 'struct', 'union', 'alternate', "
     "'command', 'event'"),
    ('unknown-key', {'schema.json': """
        { 'struct': 'Foo',
          'data': {},
          'bogus': 'x' }
        """}, ('schema.json', 4), "struct 'Foo' has unknown key 'bogus'"),
    ('missing-data', {'schema.json': """
        { 'enum': 'Foo' }
        """}, ('schema.json', 2), "enum 'Foo' misses key 'data'"),
    ('name-not-string', {'schema.json': """
        { 'struct': [ 'Foo' ], 'data': {} }
        """}, ('schema.json', 2), 'name of struct must be a string'),
    ('gen-true', {'schema.json': """
        { 'command': 'do-it',
          'gen': true }
        """}, ('schema.json', 3), "flag 'gen' may only use false value"),
    ('boxed-false', {'schema.json': """
        { 'command': 'do-it', 'data': 'Foo',
          'boxed': false }
        """}, ('schema.json', 3), "flag 'boxed' may only use true value"),
    ('boxed-inline-data', {'schema.json': """
        { 'command': 'do-it', 'boxed': true,
          'data': { 'a': 'int' } }
        """}, ('schema.json', 3), "'boxed': true requires 'data' of command "
     "'do-it' to name a type"),
    ('boxed-without-data', {'schema.json': """
        { 'command': 'do-it',
          'boxed': true }
        """}, ('schema.json', 3), "'boxed': true requires 'data'"),
    ('data-list', {'schema.json': """
        { 'command': 'do-it',
          'data': [ 'int' ] }
        """}, ('schema.json', 3), "'data' of command 'do-it' must be an "
     "object or a type name"),
    ('enum-data-not-list', {'schema.json': """
        { 'enum': 'Foo',
          'data': { 'a': 'int' } }
        """}, ('schema.json', 3), "'data' of enum 'Foo' must be a list"),
    ('enum-empty', {'schema.json': """
        { 'enum': 'Foo', 'data': [] }
        """}, ('schema.json', 2), "enum 'Foo' has no values"),
    ('enum-bad-prefix', {'schema.json': """
        { 'enum': 'Foo', 'data': [ 'a' ],
          'prefix': 'not an identifier' }
        """}, ('schema.json', 3), "'prefix' of enum 'Foo' must be a C "
     "identifier string"),
    ('enum-duplicate-value', {'schema.json': """
        { 'enum': 'Foo', 'data': [ 'a',
                                   'b',
                                   'a' ] }
        """}, ('schema.json', 4), "enum 'Foo' lists value 'a' twice"),
    ('enum-c-clash', {'schema.json': """
        { 'enum': 'Foo', 'data': [ 'a-b',
                                   'a.b' ] }
        """}, ('schema.json', 3), "value 'a.b' of enum 'Foo' clashes with "
     "value 'a-b' in C"),
    ('enum-value-unknown-key', {'schema.json': """
        { 'enum': 'Foo', 'data': [ { 'name': 'a',
                                     'if': 'X' } ] }
        """}, ('schema.json', 3), "enum value has unknown key 'if'"),

    # -- names
    ('type-not-camel', {'schema.json': """
        { 'struct': 'foo', 'data': {} }
        """}, ('schema.json', 2), "struct name 'foo' should use CamelCase"),
    ('type-ends-in-list', {'schema.json': """
        { 'enum': 'FooList', 'data': [ 'a' ] }
        """}, ('schema.json', 2), "enum name 'FooList' must not end in "
     "'List'"),
    ('command-upper', {'schema.json': """
        { 'command': 'Do-It' }
        """}, ('schema.json', 2), "command name 'Do-It' should use lowercase "
     "and '-'"),
    ('command-underscore', {'schema.json': """
        { 'command': 'do_it' }
        """}, ('schema.json', 2), "command name 'do_it' should use lowercase "
     "and '-'"),
    ('event-lower', {'schema.json': """
        { 'event': 'Boom' }
        """}, ('schema.json', 2), "event name 'Boom' should be ALL_CAPS"),
    ('member-underscore', {'schema.json': """
        { 'struct': 'Foo',
          'data': { 'ok': 'int',
                    'not_ok': 'int' } }
        """}, ('schema.json', 4), "member name 'not_ok' should use lowercase "
     "and '-'"),
    ('member-has-prefix', {'schema.json': """
        { 'struct': 'Foo',
          'data': { '*has-x': 'int' } }
        """}, ('schema.json', 3), "member name 'has-x' is reserved (it starts "
     "with 'has-')"),
    ('member-q-prefix', {'schema.json': """
        { 'struct': 'Foo',
          'data': { 'q-x': 'int' } }
        """}, ('schema.json', 3), "member name 'q-x' is reserved (it starts "
     "with 'q-')"),
    ('member-unknown-key', {'schema.json': """
        { 'struct': 'Foo',
          'data': { 'a': { 'type': 'int',
                           'default': 'x' } } }
        """}, ('schema.json', 4), "member 'a' has unknown key 'default'"),
    ('member-nested-array', {'schema.json': """
        { 'struct': 'Foo',
          'data': { 'a': [ [ 'int' ] ] } }
        """}, ('schema.json', 3), "array type must be a list of exactly one "
     "type name, as ['Name']"),
    ('feature-duplicate', {'schema.json': """
        { 'struct': 'Foo', 'data': {},
          'features': [ 'x',
                        'x' ] }
        """}, ('schema.json', 4), "duplicate feature 'x'"),
    ('feature-bad-name', {'schema.json': """
        { 'struct': 'Foo', 'data': {},
          'features': [ 'Bad_Name' ] }
        """}, ('schema.json', 3), "feature name 'Bad_Name' should use "
     "lowercase and '-'"),

    # -- pragmas and includes
    ('pragma-unknown', {'schema.json': """
        { 'pragma': { 'doc-required': true,
                      'frobnicate': true } }
        """}, ('schema.json', 3), "unknown pragma 'frobnicate'"),
    ('pragma-not-list', {'schema.json': """
        { 'pragma': { 'member-name-exceptions': 'Foo' } }
        """}, ('schema.json', 2), "pragma 'member-name-exceptions' must be a "
     "list of strings"),
    ('include-missing', {'schema.json': """
        { 'enum': 'Foo', 'data': [ 'a' ] }
        { 'include': 'nope.json' }
        """}, ('schema.json', 3), "can't read include file '%(dir)s/nope.json'"
     ": No such file or directory"),
    ('include-loop', {'schema.json': """
        { 'include': 'sub/a.json' }
        """, 'sub/a.json': """
        { 'include': 'b.json' }
        """, 'sub/b.json': """
        { 'enum': 'Foo', 'data': [ 'a' ] }
        { 'include': 'a.json' }
        """}, ('sub/b.json', 3), "inclusion loop for 'a.json'"),
    ('error-in-include', {'schema.json': """
        { 'include': 'sub/a.json' }
        """, 'sub/a.json': """
        { 'struct': 'Foo',
          'data': { 'a': 'Bar' } }
        """}, ('sub/a.json', 3), "unknown type 'Bar'"),

    # -- types
    ('unknown-member-type', {'schema.json': """
        { 'struct': 'Foo',
          'data': { 'a': 'int',
                    'b': 'Bar' } }
        """}, ('schema.json', 4), "unknown type 'Bar'"),
    ('unknown-array-type', {'schema.json': """
        { 'struct': 'Foo',
          'data': { 'a': [ 'Bar' ] } }
        """}, ('schema.json', 3), "unknown type 'Bar'"),
    ('list-name-is-not-a-type', {'schema.json': """
        { 'struct': 'Foo',
          'data': { 'a': 'intList' } }
        """}, ('schema.json', 3), "unknown type 'intList'"),
    ('implicit-name-is-not-a-type', {'schema.json': """
        { 'command': 'do-it', 'data': { 'a': 'int' } }
        { 'struct': 'Foo',
          'data': { 'a': 'q_obj_do-it-arg' } }
        """}, ('schema.json', 4), "unknown type 'q_obj_do-it-arg'"),
    ('unknown-base', {'schema.json': """
        { 'struct': 'Foo', 'data': {},
          'base': 'Bar' }
        """}, ('schema.json', 3), "unknown type 'Bar'"),
    ('base-not-struct', {'schema.json': """
        { 'enum': 'Bar', 'data': [ 'a' ] }
        { 'struct': 'Foo', 'data': {},
          'base': 'Bar' }
        """}, ('schema.json', 4), "'base' of struct 'Foo' must be a struct, "
     "not enum 'Bar'"),
    ('base-loop', {'schema.json': """
        { 'struct': 'Foo', 'base': 'Bar', 'data': {} }
        { 'struct': 'Bar', 'base': 'Foo', 'data': {} }
        """}, ('schema.json', 2), "struct 'Foo' has itself as its base "
     "(through 'Foo' -> 'Bar')"),
    ('duplicate-definition', {'schema.json': """
        { 'enum': 'Foo', 'data': [ 'a' ] }

        { 'struct': 'Foo', 'data': {} }
        """}, ('schema.json', 4), "'Foo' is already defined (first defined at "
     "%(dir)s/schema.json:2)"),
    ('builtin-redefined', {'schema.json': """
        { 'enum': 'QType', 'data': [ 'a' ] }
        """}, ('schema.json', 2), "'QType' is already defined (a built-in "
     "type)"),
    ('member-collides-with-base', {'schema.json': """
        { 'struct': 'Base', 'data': { 'a': 'int' } }
        { 'struct': 'Foo', 'base': 'Base',
          'data': { 'b': 'int',
                    '*a': 'str' } }
        """}, ('schema.json', 5), "member 'a' of struct 'Foo' collides with "
     "member 'a' of its base struct 'Base'"),

    # -- unions
    ('union-base-without-discriminator', {'schema.json': """
        { 'union': 'Un', 'base': { 'k': 'str' },
          'data': {} }
        """}, ('schema.json', 2), "union 'Un' needs both 'base' and "
     "'discriminator' (or neither, for a simple union)"),
    ('union-discriminator-not-in-base', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'union': 'Un', 'base': { 'kind': 'Ek' },
          'discriminator': 'type',
          'data': {} }
        """}, ('schema.json', 4), "discriminator 'type' is not a member of the"
     " base of union 'Un'"),
    ('union-optional-discriminator', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'union': 'Un', 'base': { '*kind': 'Ek' },
          'discriminator': 'kind',
          'data': {} }
        """}, ('schema.json', 4), "discriminator member 'kind' of union 'Un' "
     "must not be optional"),
    ('union-discriminator-not-enum', {'schema.json': """
        { 'union': 'Un', 'base': { 'kind': 'str' },
          'discriminator': 'kind',
          'data': {} }
        """}, ('schema.json', 3), "discriminator member 'kind' of union 'Un' "
     "must be of enum type, not built-in type 'str'"),
    ('union-branch-not-enum-value', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'struct': 'St', 'data': {} }
        { 'union': 'Un', 'base': { 'kind': 'Ek' }, 'discriminator': 'kind',
          'data': { 'a': 'St',
                    'b': 'St' } }
        """}, ('schema.json', 6), "branch 'b' of union 'Un' is not a value of "
     "enum 'Ek'"),
    ('union-branch-not-struct', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'union': 'Un', 'base': { 'kind': 'Ek' }, 'discriminator': 'kind',
          'data': { 'a': 'Ek' } }
        """}, ('schema.json', 4), "branch 'a' of union 'Un' must be a struct, "
     "not enum 'Ek'"),
    ('union-branch-is-union', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'struct': 'St', 'data': {} }
        { 'union': 'Vn', 'base': { 'kind': 'Ek' }, 'discriminator': 'kind',
          'data': { 'a': 'St' } }
        { 'union': 'Un', 'base': { 'kind': 'Ek' }, 'discriminator': 'kind',
          'data': { 'a': 'Vn' } }
        """}, ('schema.json', 7), "branch 'a' of union 'Un' must be a struct, "
     "not union 'Vn'"),
    ('union-branch-builtin', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'union': 'Un', 'base': { 'kind': 'Ek' }, 'discriminator': 'kind',
          'data': { 'a': 'int' } }
        """}, ('schema.json', 4), "branch 'a' of union 'Un' must be a struct, "
     "not built-in type 'int'"),
    ('union-branch-array', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'union': 'Un', 'base': { 'kind': 'Ek' }, 'discriminator': 'kind',
          'data': { 'a': [ 'int' ] } }
        """}, ('schema.json', 4), "type of branch 'a' cannot be an array"),
    ('union-branch-collides', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'struct': 'St', 'data': { 'kind': 'int' } }
        { 'union': 'Un', 'base': { 'kind': 'Ek' }, 'discriminator': 'kind',
          'data': { 'a': 'St' } }
        """}, ('schema.json', 5), "member 'kind' of branch 'a' collides with "
     "member 'kind' of union 'Un'"),
    ('union-member-u', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'union': 'Un', 'base': { 'kind': 'Ek',
                                  'u': 'int' },
          'discriminator': 'kind', 'data': {} }
        """}, ('schema.json', 4), "member name 'u' is reserved in unions "
     "(union Un)"),
    ('union-optional-branch', {'schema.json': """
        { 'union': 'Un',
          'data': { '*a': 'int' } }
        """}, ('schema.json', 3), "branch 'a' of union 'Un' cannot be "
     "optional"),
    ('simple-union-empty', {'schema.json': """
        { 'union': 'Un',
          'data': {} }
        """}, ('schema.json', 3), "simple union 'Un' has no branches"),
    ('simple-union-unknown-type', {'schema.json': """
        { 'union': 'Un',
          'data': { 'a': 'int',
                    'b': 'Nope' } }
        """}, ('schema.json', 4), "unknown type 'Nope'"),
    ('simple-union-kind-clash', {'schema.json': """
        { 'enum': 'UnKind', 'data': [ 'x' ] }
        { 'union': 'Un', 'data': { 'a': 'int' } }
        """}, ('schema.json', 3), "'UnKind' is already defined (first defined "
     "at %(dir)s/schema.json:2)"),

    # -- alternates
    ('alternate-ambiguous-numbers', {'schema.json': """
        { 'alternate': 'Alt',
          'data': { 'i': 'int',
                    'n': 'number' } }
        """}, ('schema.json', 4), "branch 'n' of alternate 'Alt' can't be "
     "distinguished from branch 'i' (both take a JSON number)"),
    ('alternate-ambiguous-strings', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'alternate': 'Alt',
          'data': { 's': 'str',
                    'e': 'Ek' } }
        """}, ('schema.json', 5), "branch 'e' of alternate 'Alt' can't be "
     "distinguished from branch 's' (both take a JSON string)"),
    ('alternate-ambiguous-objects', {'schema.json': """
        { 'struct': 'Sa', 'data': {} }
        { 'struct': 'Sb', 'data': {} }
        { 'alternate': 'Alt',
          'data': { 'a': 'Sa',
                    'b': 'Sb' } }
        """}, ('schema.json', 6), "branch 'b' of alternate 'Alt' can't be "
     "distinguished from branch 'a' (both take a JSON object)"),
    ('alternate-any', {'schema.json': """
        { 'alternate': 'Alt',
          'data': { 'a': 'any' } }
        """}, ('schema.json', 3), "branch 'a' of alternate 'Alt' cannot use "
     "type 'any'"),
    ('alternate-of-alternate', {'schema.json': """
        { 'alternate': 'Inner', 'data': { 's': 'str' } }
        { 'alternate': 'Alt',
          'data': { 'a': 'Inner' } }
        """}, ('schema.json', 4), "branch 'a' of alternate 'Alt' cannot use "
     "alternate 'Inner'"),
    ('alternate-optional-branch', {'schema.json': """
        { 'alternate': 'Alt',
          'data': { '*s': 'str' } }
        """}, ('schema.json', 3), "branch 's' of alternate 'Alt' cannot be "
     "optional"),
    ('alternate-empty', {'schema.json': """
        { 'alternate': 'Alt',
          'data': {} }
        """}, ('schema.json', 3), "alternate 'Alt' has no branches"),

    # -- commands and events
    ('command-data-enum', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'command': 'do-it',
          'data': 'Ek' }
        """}, ('schema.json', 4), "'data' of command 'do-it' must name a "
     "struct, not enum 'Ek'"),
    ('command-data-union-not-boxed', {'schema.json': """
        { 'enum': 'Ek', 'data': [ 'a' ] }
        { 'union': 'Un', 'base': { 'kind': 'Ek' }, 'discriminator': 'kind',
          'data': {} }
        { 'command': 'do-it',
          'data': 'Un' }
        """}, ('schema.json', 6), "'data' of command 'do-it' must name a "
     "struct, not union 'Un'"),
    ('command-data-unknown', {'schema.json': """
        { 'command': 'do-it',
          'data': 'Nope' }
        """}, ('schema.json', 3), "unknown type 'Nope'"),
    ('command-returns-str', {'schema.json': """
        { 'command': 'do-it',
          'returns': 'str' }
        """}, ('schema.json', 3), "'returns' of command 'do-it' must be a "
     "struct or union or a list of one, not built-in type 'str' (or list "
     "the command in pragma 'command-returns-exceptions')"),
    ('command-returns-int-list', {'schema.json': """
        { 'command': 'do-it',
          'returns': [ 'int' ] }
        """}, ('schema.json', 3), "'returns' of command 'do-it' must be a "
     "struct or union or a list of one, not array 'intList' (or list the "
     "command in pragma 'command-returns-exceptions')"),
    ('command-returns-unknown', {'schema.json': """
        { 'command': 'do-it',
          'returns': [ 'Nope' ] }
        """}, ('schema.json', 3), "unknown type 'Nope'"),
    ('command-arg-unknown', {'schema.json': """
        { 'command': 'do-it',
          'data': { 'a': 'int',
                    '*b': 'Nope' } }
        """}, ('schema.json', 4), "unknown type 'Nope'"),
    ('event-data-alternate', {'schema.json': """
        { 'alternate': 'Alt', 'data': { 's': 'str' } }
        { 'event': 'BOOM', 'boxed': true,
          'data': 'Alt' }
        """}, ('schema.json', 4), "'data' of event 'BOOM' must name a struct "
     "or union, not alternate 'Alt'"),

    ('command-c-clash', {'schema.json': """
        { 'pragma': { 'command-name-exceptions': [ 'do_it' ] } }
        { 'command': 'do-it' }
        { 'command': 'do_it' }
        """}, ('schema.json', 4), "command 'do_it' clashes with command "
     "'do-it' in C"),
    ('command-arg-errp', {'schema.json': """
        { 'command': 'do-it',
          'data': { 'a': 'int',
                    'errp': 'str' } }
        """}, ('schema.json', 4), "argument name 'errp' of command 'do-it' "
     "is reserved"),

    # -- documentation
    ('doc-wrong-symbol', {'schema.json': """
        ##
        # @Bar:
        ##
        { 'enum': 'Foo', 'data': [ 'a' ] }
        """}, ('schema.json', 2), "documentation comment is for 'Bar' but the "
     "definition that follows is 'Foo'"),
    ('doc-unknown-member', {'schema.json': """
        ##
        # @Foo:
        #
        # @a: fine
        #
        # @b: no such member
        ##
        { 'struct': 'Foo', 'data': { 'a': 'int' } }
        """}, ('schema.json', 7), "documented member 'b' does not exist in "
     "struct 'Foo'"),
    ('doc-unknown-feature', {'schema.json': """
        ##
        # @Foo:
        #
        # Features:
        # @nope: no such feature
        ##
        { 'struct': 'Foo', 'data': {}, 'features': [ 'yes' ] }
        """}, ('schema.json', 6), "documented feature 'nope' does not exist "
     "in struct 'Foo'"),
    ('doc-required', {'schema.json': """
        { 'pragma': { 'doc-required': true } }
        ##
        # @Foo:
        ##
        { 'enum': 'Foo', 'data': [ 'a' ] }
        { 'command': 'do-it' }
        """}, ('schema.json', 7), "command 'do-it' lacks a documentation "
     "comment"),
    ('doc-before-include', {'schema.json': """
        ##
        # @Foo:
        ##
        { 'include': 'x.json' }
        """}, ('schema.json', 2), "documentation comment for 'Foo' is "
     "followed by an include"),
    ('doc-orphan', {'schema.json': """
        ##
        # @Foo:
        ##

        ##
        # @Bar:
        ##
        { 'enum': 'Bar', 'data': [ 'a' ] }
        """}, ('schema.json', 2), "documentation comment for 'Foo' is not "
     "followed by its definition"),
]


# Commands only xblk has (not compared with QEMU's schema).
XBLK_ONLY_COMMANDS = {'x-query-transaction-stats', 'x-query-frame',
                      'x-frame-stop', 'x-query-frame-times',
                      'x-query-snapshot-stats', 'x-query-save-state'}

class BadSchemas(xtest.TmpDirTestCase):
    """One test per entry of BAD (methods are added below)."""

    def check_bad(self, files, where, msg):
        for name, text in files.items():
            p = self.path(name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, 'w', encoding='utf-8') as f:
                f.write(textwrap.dedent(text))
        p = gen('-o', self.path('out'), self.path('schema.json'))
        want = '%s:%d: %s\n' % (self.path(where[0]), where[1],
                                msg % {'dir': self.dir})
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stderr, want)
        self.assertFalse(os.path.exists(self.path('out')))


for _name, _files, _where, _msg in BAD:
    def _test(self, files=_files, where=_where, msg=_msg):
        self.check_bad(files, where, msg)
    setattr(BadSchemas, 'test_' + _name.replace('-', '_'), _test)


MAIN_FILES = {
    'qapi-types.h', 'qapi-types.c', 'qapi-visit.h', 'qapi-visit.c',
    'qapi-commands.h', 'qapi-commands.c', 'qapi-events.h', 'qapi-events.c',
    'qapi-introspect.h', 'qapi-introspect.c', 'qapi-builtin-types.h',
    'qapi-builtin-types.c', 'qapi-builtin-visit.h', 'qapi-builtin-visit.c',
    'qapi-gen.stamp'}


class GoodSchemas(xtest.TmpDirTestCase):

    def assertIn(self, needle, text, msg=None):
        """Like unittest's, without printing the whole generated file."""
        if needle not in text:
            self.fail(msg or '%r not in the generated text' % needle)

    def write(self, name, text):
        with open(self.path(name), 'w') as f:
            f.write(textwrap.dedent(text))
        return self.path(name)

    def test_main_schema_outputs(self):
        out = self.path('out')
        p = gen('-o', out, SCHEMA)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, '')
        self.assertEqual(set(os.listdir(out)), MAIN_FILES)
        with open(os.path.join(out, 'qapi-commands.h')) as f:
            h = f.read()
        # generated commands and the signature of a few of them
        self.assertIn('void qmp_block_resize(bool has_device, const char '
                      '*device, bool has_node_name, const char *node_name, '
                      'int64_t size, GError **errp);', h)
        self.assertIn('void qmp_blockdev_add(BlockdevOptions *arg, '
                      'GError **errp);', h)
        self.assertIn('char *qmp_human_monitor_command(const char '
                      '*command_line, bool has_cpu_index, int64_t cpu_index,'
                      ' GError **errp);', h)
        self.assertIn('BlockInfoList *qmp_query_block(GError **errp);', h)
        self.assertIn('void qmp_init_marshal(QmpCommandList *cmds);', h)
        # 'gen': false commands are left to the monitor
        for name in ('qmp_query_qmp_schema(',):
            self.assertNotIn(name, h)
        with open(os.path.join(out, 'qapi-events.h')) as f:
            self.assertIn('void qapi_event_send_shutdown(bool guest, '
                          'ShutdownCause reason);', f.read())
        with open(os.path.join(out, 'qapi-types.h')) as f:
            t = f.read()
        self.assertIn('RUN_STATE_RUNNING,', t)
        self.assertIn('TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT_SYNC,', t)
        self.assertIn('QAPI_ERROR_CLASS_GENERICERROR,', t)

    def test_rewrite_only_changes(self):
        out = self.path('out')
        s = self.write('s.json', """
            { 'enum': 'Foo', 'data': [ 'a' ] }
            { 'command': 'do-it', 'data': { 'f': 'Foo' } }
            """)
        self.assertEqual(gen('-o', out, s).returncode, 0)
        mtimes = {f: os.stat(os.path.join(out, f)).st_mtime_ns
                  for f in os.listdir(out)}
        time.sleep(0.05)
        self.assertEqual(gen('-o', out, s).returncode, 0)
        for f, m in mtimes.items():
            same = os.stat(os.path.join(out, f)).st_mtime_ns == m
            self.assertEqual(same, f != 'qapi-gen.stamp', f)
        # an edit that only touches the events leaves the types alone
        with open(s, 'a') as f:
            f.write("{ 'event': 'BOOM' }\n")
        time.sleep(0.05)
        self.assertEqual(gen('-o', out, s).returncode, 0)
        changed = {f for f in mtimes
                   if os.stat(os.path.join(out, f)).st_mtime_ns != mtimes[f]}
        self.assertEqual(changed, {'qapi-events.h', 'qapi-events.c',
                                   'qapi-introspect.c', 'qapi-gen.stamp'})

    def test_prefix_and_no_builtins(self):
        out = self.path('out')
        s = self.write('s.json', """
            { 'struct': 'Foo', 'data': { 'l': [ 'str' ] } }
            """)
        p = gen('-o', out, '-p', 'my-', '-B', s)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(set(os.listdir(out)), {
            'my-' + f for f in MAIN_FILES if 'builtin' not in f})
        with open(os.path.join(out, 'my-qapi-types.h')) as f:
            self.assertIn('#include "qapi/qapi-builtin-types.h"', f.read())
        with open(os.path.join(out, 'my-qapi-commands.h')) as f:
            self.assertIn('void my_qmp_init_marshal(QmpCommandList *cmds);',
                          f.read())
        with open(os.path.join(out, 'my-qapi-introspect.h')) as f:
            self.assertIn('const char *my_qapi_introspect_json(void);',
                          f.read())

    def test_keywords_and_c_names(self):
        out = self.path('out')
        s = self.write('s.json', """
            { 'pragma': { 'member-name-exceptions': [ 'Foo' ] } }
            { 'struct': 'Foo', 'data': { 'int': 'int', '*default': 'str',
                                         'a-b': 'int', 'unix': 'bool',
                                         'Upper_case': 'int' } }
            { 'enum': 'QMPThing', 'data': [ 'if', '1x', 'a.b' ] }
            """)
        self.assertEqual(gen('-o', out, s).returncode, 0)
        with open(os.path.join(out, 'qapi-types.h')) as f:
            t = f.read()
        for decl in ('int64_t q_int;', 'bool has_q_default;',
                     'char *q_default;', 'int64_t a_b;', 'bool q_unix;',
                     'int64_t Upper_case;', 'QMP_THING_IF,', 'QMP_THING_1X,',
                     'QMP_THING_A_B,', 'QMP_THING__MAX,'):
            self.assertIn(decl, t)

    def test_introspection_unmasked(self):
        out = self.path('out')
        s = self.write('s.json', """
            { 'struct': 'Foo', 'data': { 'a': 'int8', '*b': [ 'uint64' ] },
              'features': [ 'deprecated' ] }
            { 'command': 'do-it', 'data': 'Foo', 'returns': 'Foo',
              'allow-oob': true }
            { 'event': 'BOOM' }
            """)
        self.assertEqual(gen('-u', '-o', out, s).returncode, 0)
        info = load_introspection(os.path.join(out, 'qapi-introspect.c'))
        self.assertEqual(info, [
            {'name': 'do-it', 'meta-type': 'command', 'arg-type': 'Foo',
             'ret-type': 'Foo', 'allow-oob': True},
            {'name': 'BOOM', 'meta-type': 'event', 'arg-type': 'q_empty'},
            {'name': 'Foo', 'meta-type': 'object', 'members': [
                {'name': 'a', 'type': 'int'},
                {'name': 'b', 'type': '[int]', 'default': None}],
             'features': ['deprecated']},
            {'name': 'q_empty', 'meta-type': 'object', 'members': []},
            {'name': 'int', 'meta-type': 'builtin', 'json-type': 'int'},
            {'name': '[int]', 'meta-type': 'array', 'element-type': 'int'}])


def load_introspection(cfile):
    """The JSON array embedded in a generated qapi-introspect.c."""
    with open(cfile) as f:
        src = f.read()
    body = src[src.index('schema_json[] =') + len('schema_json[] ='):
               src.index(';\n\nconst char')]
    return json.loads(''.join(json.loads(line.strip())
                              for line in body.strip().splitlines()))


# ---------------------------------------------------------------------------
# The real schema against QEMU 7.2

# Differences on purpose: members xblk has and QEMU not, as (the end of
# the path of the object, member).  xblk's blkdebug takes rules, not events.
XBLK_ONLY = {('[blkdebug]', 'inject')}


class Resolver:
    """Walks one introspection reply: type name -> entity."""

    def __init__(self, entities):
        self.by_name = {e['name']: e for e in entities}

    def get(self, name):
        return self.by_name[name]


def json_kind(res, tname):
    e = res.get(tname)
    mt = e['meta-type']
    if mt == 'builtin':
        return e['json-type']
    return mt


class QemuComparison(xtest.TmpDirTestCase):
    """Commands and events that xblk shares with QEMU take and return the
    same members (xblk may omit optional ones and enum values)."""

    @classmethod
    def setUpClass(cls):
        cls.qemu = None
        if not QEMU:
            return
        # quit only once the whole schema was read: sent in one batch,
        # QEMU may exit before its stdio chardev wrote all of the reply.
        p = subprocess.Popen([QEMU, '-machine', 'none', '-nodefaults',
                              '-display', 'none', '-qmp', 'stdio'],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        try:
            p.stdin.write('{"execute": "qmp_capabilities"}\n'
                          '{"execute": "query-qmp-schema"}\n')
            p.stdin.flush()
            for line in p.stdout:
                msg = json.loads(line)
                if isinstance(msg.get('return'), list):
                    cls.qemu = msg['return']
                    break
            p.stdin.write('{"execute": "quit"}\n')
            p.stdin.flush()
            p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def setUp(self):
        super().setUp()
        if not QEMU:
            self.skipTest('qemu-system-x86_64 not installed')
        self.assertIsNotNone(self.qemu, 'no query-qmp-schema reply')
        out = self.path('out')
        p = gen('-o', out, SCHEMA)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.ours = load_introspection(os.path.join(out,
                                                    'qapi-introspect.c'))
        self.q = Resolver(self.qemu)
        self.x = Resolver(self.ours)
        self.problems = []

    def compare_type(self, path, xt, qt, seen):
        """xt, qt: type names in our reply and QEMU's."""
        if (xt, qt) in seen:
            return
        seen.add((xt, qt))
        xk, qk = json_kind(self.x, xt), json_kind(self.q, qt)
        if xk != qk:
            self.problems.append('%s: %s in xblk, %s in QEMU' % (path, xk, qk))
            return
        xe, qe = self.x.get(xt), self.q.get(qt)
        if xk == 'enum':
            extra = set(xe['values']) - set(qe['values'])
            if extra:
                self.problems.append('%s: values %s not in QEMU'
                                     % (path, sorted(extra)))
        elif xk == 'array':
            self.compare_type(path + '[]', xe['element-type'],
                              qe['element-type'], seen)
        elif xk == 'alternate':
            qkinds = {json_kind(self.q, m['type']): m['type']
                      for m in qe['members']}
            for m in xe['members']:
                k = json_kind(self.x, m['type'])
                if k not in qkinds:
                    self.problems.append('%s: alternate branch %s not in '
                                         'QEMU' % (path, k))
                else:
                    self.compare_type(path + '<%s>' % k, m['type'],
                                      qkinds[k], seen)
        elif xk == 'object':
            self.compare_members(path, xe, qe, seen)

    def compare_members(self, path, xe, qe, seen):
        qm = {m['name']: m for m in qe['members']}
        xm = {m['name']: m for m in xe['members']}
        for name, m in xm.items():
            where = '%s.%s' % (path, name)
            if any(path.endswith(p) and name == n for p, n in XBLK_ONLY):
                continue
            if name not in qm:
                self.problems.append('%s: not in QEMU' % where)
                continue
            if ('default' in m) != ('default' in qm[name]):
                self.problems.append('%s: optional %s in xblk, %s in QEMU' % (
                    where, 'default' in m, 'default' in qm[name]))
            self.compare_type(where, m['type'], qm[name]['type'], seen)
        for name, m in qm.items():
            if 'default' not in m and name not in xm:
                self.problems.append('%s.%s: required in QEMU, missing in '
                                     'xblk' % (path, name))
        if ('tag' in xe) != ('tag' in qe) or xe.get('tag') != qe.get('tag'):
            self.problems.append('%s: tag %s in xblk, %s in QEMU'
                                 % (path, xe.get('tag'), qe.get('tag')))
            return
        qv = {v['case']: v['type'] for v in qe.get('variants', [])}
        for v in xe.get('variants', []):
            if v['case'] not in qv:
                self.problems.append('%s: case %s not in QEMU'
                                     % (path, v['case']))
                continue
            # a branch of ours without members stands for "not supported"
            self.compare_members('%s[%s]' % (path, v['case']),
                                 self.x.get(v['type']),
                                 self.q.get(qv[v['case']]), seen) \
                if self.x.get(v['type'])['members'] else None

    def test_shared_commands_and_events(self):
        qents = {e['name']: e for e in self.qemu
                 if e['meta-type'] in ('command', 'event')}
        shared = 0
        for e in self.ours:
            if e['meta-type'] not in ('command', 'event'):
                continue
            if e['name'] in XBLK_ONLY_COMMANDS:
                continue
            q = qents.get(e['name'])
            self.assertIsNotNone(q, '%s %s is not in QEMU' % (
                e['meta-type'], e['name']))
            shared += 1
            seen = set()
            self.compare_type(e['name'], e['arg-type'], q['arg-type'], seen)
            if e['meta-type'] == 'command':
                self.compare_type(e['name'] + '->', e['ret-type'],
                                  q['ret-type'], seen)
                if e.get('allow-oob') != q.get('allow-oob'):
                    self.problems.append('%s: allow-oob differs' % e['name'])
            if set(e.get('features', [])) != set(q.get('features', [])):
                self.problems.append('%s: features %s in xblk, %s in QEMU' % (
                    e['name'], e.get('features'), q.get('features')))
        self.assertGreater(shared, 25)
        self.assertEqual(self.problems, [])

    def test_enum_member_features(self):
        """Deprecation marks on enum values match QEMU's (drive-backup)."""
        x = [e for e in self.ours if e['meta-type'] == 'enum' and
             'drive-backup' in e['values']]
        self.assertEqual(len(x), 1)
        self.assertIn({'name': 'drive-backup', 'features': ['deprecated']},
                      x[0]['members'])


if __name__ == '__main__':
    xtest.main()
