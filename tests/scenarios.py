"""What the scenario files share (mpi_cases.py, mpi_parity.py, mpi_faults.py): their cases by
name, and running the one named on the command line, on the head, under the runtime."""

import sys

import mosaic_mpi as mosaic


def cases(namespace):
    """``{name: case}`` for every ``async def case_<name>(runtime)`` of a module's namespace."""
    return {name[len('case_'):]: fn for name, fn in namespace.items() if name.startswith('case_')}


def run(namespace):
    """Run the case ``sys.argv[1]`` of ``namespace`` and print ``CASE <name> PASSED`` if it holds."""
    table = cases(namespace)

    async def main(runtime):
        name = sys.argv[1]
        await table[name](runtime)
        print(f'CASE {name} PASSED', flush=True)

    mosaic.run(main)
