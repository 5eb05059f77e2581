"""Load a script of ``scripts/`` as a module, as the tests call them in-process."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(folder, name):
    """The module of ``scripts/{folder}/{name}.py`` (its ``main(argv)``, ``parse_args(argv)``)."""
    path = os.path.join(ROOT, 'scripts', folder, name + '.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
