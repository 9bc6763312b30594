"""The Debian package (debian/): `dpkg-buildpackage -us -uc -b` builds it from a bare copy of the
sources (no build directory, no git), with exactly the build dependencies debian/control lists;
the .deb holds the binary, a man page, the unit of dist/usher.service (enabled and started by the
maintainer scripts) and /etc/usher/usher.yaml as a conffile, depends on the packages of the
libraries the binary links, and what it installs works: the binary runs, the configuration passes
`usher check`, the unit passes `systemd-analyze verify`. The build compiles the whole product
once, for every test here (minutes: CMakeLists.txt registers this suite once, not per backend)."""
import glob
import gzip
import os
import re
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))
# What the package build reads: tests, benchmarks and fuzzers stay out, as debian/rules leaves them.
PACKAGE_SOURCES = ("CMakeLists.txt", "README.md", "debian", "dist", "docs", "examples", "src")
TOOLS = {"debhelper-compat", "cmake", "pkg-config", "help2man"}  # run, not compiled against
BUILD_ESSENTIAL = ["libc6-dev", "gcc", "g++", "make", "dpkg-dev"]  # implied by every Build-Depends


def run(*command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, check=True, **kwargs).stdout


def build_depends(control):
    with open(control) as f:
        field = re.search(r"^Build-Depends:(.*?)^\S", f.read(), re.M | re.S).group(1)
    return {re.match(r"\s*([\w.+-]+)", d).group(1) for d in field.split(",") if d.strip()}


def installed_closure(packages):
    """The packages and everything they depend on, as installed here."""
    out = run("apt-cache", "depends", "--recurse", "--installed", "--no-recommends", "--no-suggests",
              "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages)
    return {line for line in out.splitlines() if not line.startswith(" ")}


def owners(paths):
    """{path: Debian package} of each path dpkg knows: tried as written, with links resolved, and
    as the merged-/usr alias (dpkg records /lib/x86_64-linux-gnu/libc.so.6)."""
    candidates = {c: p for p in paths for c in (p, os.path.realpath(p), os.path.realpath(p).removeprefix("/usr"))}
    out = subprocess.run(["dpkg-query", "-S", *sorted(candidates)], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        if not line.startswith("diversion"):
            package, path = line.split(": ", 1)
            found[candidates[path]] = package.split(",")[0].split(":")[0]
    return found


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="usher-package-")
        cls.addClassCleanup(shutil.rmtree, cls.folder, True)
        cls.tree = os.path.join(cls.folder, "src")  # the .deb lands in the tree's parent
        for name in PACKAGE_SOURCES:
            source, target = os.path.join(SOURCE, name), os.path.join(cls.tree, name)
            if os.path.isdir(source):
                shutil.copytree(source, target, symlinks=True)
            else:
                os.makedirs(cls.tree, exist_ok=True)
                shutil.copy2(source, target)
        check = subprocess.run(["dpkg-checkbuilddeps"], cwd=cls.tree, capture_output=True, text=True)
        if check.returncode != 0:
            raise AssertionError(f"dpkg-checkbuilddeps: {check.stderr}")
        # noopt (-O0): the package's contents do not depend on optimisation, and the compile
        # takes about half as long.
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck noopt parallel=2")
        build = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=cls.tree, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
        if build.returncode != 0:
            raise AssertionError(f"dpkg-buildpackage failed:\n{build.stdout[-6000:]}")
        cls.deb = glob.glob(os.path.join(cls.folder, "usher_*.deb"))[0]
        cls.contents = [line.split()[5] for line in run("dpkg-deb", "-c", cls.deb).splitlines()]
        cls.root = os.path.join(cls.folder, "root")
        run("dpkg-deb", "-x", cls.deb, cls.root)

    def unit_path(self):
        units = [p for p in self.contents if re.fullmatch(r"\./(usr/)?lib/systemd/system/usher\.service", p)]
        self.assertEqual(len(units), 1, self.contents)
        return os.path.join(self.root, units[0])

    def test_it_holds_the_binary_the_unit_the_configuration_and_the_man_page(self):
        self.assertEqual([p for p in self.contents if p.startswith("./usr/bin/") and p != "./usr/bin/"],
                         ["./usr/bin/usher"])  # no test, benchmark or demo binary
        self.assertIn("./etc/usher/usher.yaml", self.contents)
        self.assertIn("./usr/share/man/man1/usher.1.gz", self.contents)
        with open(self.unit_path()) as f, open(os.path.join(SOURCE, "dist", "usher.service")) as dist:
            self.assertEqual(f.read(), dist.read())

    def test_the_man_page_is_the_binarys_help(self):
        with gzip.open(os.path.join(self.root, "usr/share/man/man1/usher.1.gz"), "rt") as f:
            page = f.read()
        self.assertIn("Validate a configuration file and exit", page)
        self.assertIn(".SH FILES", page)

    def test_the_units_documentation_is_installed_uncompressed(self):
        with open(self.unit_path()) as f:
            documentation = re.search(r"^Documentation=file:(\S+)", f.read(), re.M).group(1)
        self.assertTrue(os.path.isfile(self.root + documentation), documentation)

    def test_the_binary_runs_and_the_configuration_passes_its_check(self):
        usher = os.path.join(self.root, "usr/bin/usher")
        version = run("dpkg-deb", "-f", self.deb, "Version").strip()
        self.assertEqual(run(usher, "--version").strip(), f"usher {version}")  # debian/changelog's version
        check = subprocess.run([usher, "check", "-c", os.path.join(self.root, "etc/usher/usher.yaml")],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_systemd_analyze_verify_accepts_the_installed_unit(self):
        with open(self.unit_path()) as f:
            text = f.read().replace("/usr/bin/usher", os.path.join(self.root, "usr/bin/usher"))
        path = os.path.join(self.folder, "usher.service")
        with open(path, "w") as f:
            f.write(text)
        verify = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
        self.assertEqual((verify.returncode, verify.stdout + verify.stderr), (0, ""))

    def test_the_configuration_is_a_conffile_and_the_unit_is_enabled_and_started(self):
        self.assertIn("/etc/usher/usher.yaml", run("dpkg-deb", "-I", self.deb, "conffiles").split())
        postinst = run("dpkg-deb", "-I", self.deb, "postinst")
        self.assertRegex(postinst, r"deb-systemd-helper (--quiet )?enable 'usher\.service'")
        self.assertRegex(postinst, r"deb-systemd-invoke \$_dh_action 'usher\.service'")

    def test_it_depends_on_the_package_of_every_library_the_binary_links(self):
        usher = os.path.join(self.root, "usr/bin/usher")
        needed = re.findall(r"NEEDED\s+(\S+)", run("objdump", "-p", usher))  # direct links only
        paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", run("ldd", usher), re.M))
        linked = set(owners([paths[name] for name in needed]).values())
        self.assertTrue({"libc-ares2", "liburing2", "libsystemd0"} <= linked, linked)
        depends = {d.split()[0] for d in re.split(r"[,|]", run("dpkg-deb", "-f", self.deb, "Depends"))}
        for package in linked:  # by its name or one it provides (libspdlog1.10-fmt9)
            provides = run("dpkg-query", "-W", "-f=${Provides}", package)
            provides = {p.split()[0] for p in provides.split(",") if p.strip()}
            self.assertTrue(({package} | provides) & depends, f"{package} is not in Depends: {sorted(depends)}")

    def test_the_build_depends_are_exactly_what_the_compiler_read(self):
        """Every header the compiler read comes from a listed package (or what one depends on), and
        every listed library package gave at least one: nothing missing, nothing extra."""
        headers = set()
        for depfile in glob.glob(os.path.join(self.tree, "build-deb", "**", "*.o.d"), recursive=True):
            with open(depfile) as f:
                headers |= {os.path.normpath(w) for w in f.read().split() if w.startswith("/usr/")}
        owner = owners(headers)
        self.assertEqual(headers - set(owner), set(), "headers from no Debian package")
        read_from = set(owner.values())
        listed = build_depends(os.path.join(self.tree, "debian", "control"))
        self.assertEqual(read_from - installed_closure(sorted(listed - {"debhelper-compat"}) + BUILD_ESSENTIAL),
                         set(), "headers from packages debian/control does not list")
        self.assertEqual(listed - TOOLS - read_from, set(), "listed, but no header of theirs was read")


if __name__ == "__main__":
    unittest.main()
