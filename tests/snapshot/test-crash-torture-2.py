#!/usr/bin/env python3
"""test-crash-torture-2: the second half of the crash torture's kills
(test-crash-torture.py has the whole design).  scripts/run-tests
schedules whole files, so the kills are shared by two files that run side
by side; this one runs part 1 of 2 with its own random choices."""
import os
import runpy

os.environ.setdefault('XBLK_TORTURE_PART', '1/2')
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'test-crash-torture.py'), run_name='__main__')
