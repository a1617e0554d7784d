"""Worker output scenario (S28), run by test_output_mpi.py under mpiexec."""

import ctypes
import logging
import os
import sys
import time

import mosaic_mpi as mosaic


@mosaic.tessera
class Talker:
    def talk(self):
        print('hello from python')
        os.write(1, b'raw descriptor line\n')
        libc = ctypes.CDLL(None)
        libc.printf(b'from C stdio\n')
        libc.fflush(None)
        logging.getLogger('user').warning('a user warning')
        sys.stderr.write('partial')
        sys.stderr.flush()
        time.sleep(0.5)                     # longer than the unfinished-line delay
        sys.stderr.write(' then the rest\n')
        print('two\nlines')
        return True

    def last_words(self):
        time.sleep(0.2)
        print('last words', flush=False)    # still buffered when the run ends


async def main(runtime):
    talker = Talker.remote()
    assert await talker.talk().result() is True
    talker.last_words()                     # not awaited: the run waits, the line is not lost
    print('head line')


if __name__ == '__main__':
    mosaic.run(main)
