"""The randomised and hash-based algorithms in the live proxy: `random` and `power-of-two` spread
without a fixed turn; `hash` and `hash-bounded` keep a key on one backend for every `hash_key`
source (client-ip, header:NAME, cookie:NAME, uri, query:NAME) while different keys spread, a
request without its key falls back to the client address, and bounded loads move a hot key's
overflow to other backends."""
import collections
import http.client
import threading
import time
import unittest

from harness import ProxyTestCase, start_backend, start_usher


def get(port, target="/", headers=None, source="127.0.0.1"):
    """One request on a fresh connection (so that nothing but the key decides), from `source`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    conn.request("GET", target, headers=headers or {})
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    assert response.status == 200, (response.status, body)
    return body


class Randomised(ProxyTestCase):
    pool_extra = "    balance: random\n"

    def sequence(self, n=300):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        out = []
        for _ in range(n):
            conn.request("GET", "/")
            out.append(conn.getresponse().read().decode())
        conn.close()
        return out

    def check_spread_without_turns(self, picks):
        counts = collections.Counter(picks)
        print(f"\n{self.pool_extra.split(':')[1].strip()}: {dict(counts)}")
        self.assertEqual(set(counts), {"a", "b", "c"})
        for n in counts.values():  # 100 expected each; far outside is not uniform
            self.assertGreater(n, 50)
            self.assertLess(n, 150)
        # Not a fixed turn: round-robin never picks one backend twice in a row, nor repeats a cycle.
        repeats = sum(x == y for x, y in zip(picks, picks[1:]))
        self.assertGreater(repeats, 30)
        self.assertNotEqual(picks[:30], picks[3:33])

    def test_random_spreads_without_a_turn(self):
        self.check_spread_without_turns(self.sequence())


class PowerOfTwo(Randomised):
    pool_extra = "    balance: power-of-two\n"

    def test_random_spreads_without_a_turn(self):
        self.check_spread_without_turns(self.sequence())

    def test_the_less_loaded_of_two_wins(self):
        # Nine slow requests arrive one after another: each goes to the less loaded of its two
        # two distinct candidates, so the busiest backend only grows on a tie and none of the
        # three holds more than four of them (a uniformly random choice puts five or more on one
        # backend 43 % of the time).
        picks, lock = [], threading.Lock()

        def slow():
            body = get(self.port, "/sleep?ms=1200")
            with lock:
                picks.append(body)
        threads = [threading.Thread(target=slow) for _ in range(9)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join(timeout=10)
        counts = collections.Counter(picks)
        self.assertEqual(sum(counts.values()), 9)
        self.assertLessEqual(max(counts.values()), 4, counts)


class KeyedPool(ProxyTestCase):
    """One subclass per hash_key source; `request(key, variant)` sends key `key` with everything
    else varied by `variant`, `keyless(variant)` a request without the key."""
    balance = "hash"
    hash_key = None

    @classmethod
    def setUpClass(cls):
        if cls.hash_key is None:
            raise unittest.SkipTest("base class")
        cls.pool_extra = f"    balance: {cls.balance}\n    hash_key: \"{cls.hash_key}\"\n"
        super().setUpClass()

    def request(self, key, variant):
        raise NotImplementedError

    def keyless(self, variant):
        return get(self.port, f"/v{variant}?other={variant}", {"X-Other": str(variant), "Cookie": f"x={variant}"})

    def test_the_same_key_lands_on_the_same_backend_and_keys_spread(self):
        homes = {}
        for key in range(30):
            picks = {self.request(f"user-{key}", variant) for variant in range(3)}
            self.assertEqual(len(picks), 1, f"key user-{key} moved: {picks}")
            homes[key] = picks.pop()
        print(f"\n{self.hash_key}: {dict(collections.Counter(homes.values()))}")
        # 30 keys on 3 backends: all three used (missing one has probability 3 x (2/3)^30).
        self.assertEqual(set(homes.values()), {"a", "b", "c"})
        # And it stays: asked again later, every key is still at home.
        for key in range(0, 30, 3):
            self.assertEqual(self.request(f"user-{key}", 7), homes[key])

    def test_a_request_without_the_key_falls_back_to_the_client_address(self):
        picks = {self.keyless(variant) for variant in range(10)}
        self.assertEqual(len(picks), 1, picks)


class HeaderKey(KeyedPool):
    hash_key = "header:X-User"

    def request(self, key, variant):
        return get(self.port, f"/p{variant}?q={variant}", {"X-User": key, "X-Other": str(variant)})


class CookieKey(KeyedPool):
    hash_key = "cookie:session"

    def request(self, key, variant):
        return get(self.port, f"/p{variant}", {"Cookie": f"a={variant}; session={key}; z={variant}"})


class QueryKey(KeyedPool):
    hash_key = "query:user"

    def request(self, key, variant):
        return get(self.port, f"/p{variant}?a={variant}&user={key}&z={variant}", {"X-Other": str(variant)})


class UriKey(KeyedPool):
    hash_key = "uri"

    def request(self, key, variant):
        return get(self.port, f"/item/{key}?x=1", {"X-Other": str(variant), "Cookie": f"c={variant}"})

    def test_a_request_without_the_key_falls_back_to_the_client_address(self):
        self.skipTest("every request has a target")

    def test_the_query_is_part_of_the_uri(self):
        picks = {get(self.port, f"/same?v={i}") for i in range(30)}
        self.assertGreater(len(picks), 1)


class ClientIpKey(KeyedPool):
    hash_key = "client-ip"

    def request(self, key, variant):
        # Each key is a client address on loopback (127.0.0.0/8 is all local).
        return get(self.port, f"/p{variant}", {"X-User": str(variant)}, source=f"127.0.0.{int(key[5:]) + 2}")

    def test_a_request_without_the_key_falls_back_to_the_client_address(self):
        self.skipTest("the client address is the key")


class BoundedHeaderKey(HeaderKey):
    balance = "hash-bounded"


class HotKey(unittest.TestCase):
    """Nine slow requests with one key at once: `hash` puts all on the key's backend,
    `hash-bounded` (factor 1.25) moves the overflow to the others."""

    def spread_of_hot_key(self, balance):
        pool_extra = f"    balance: {balance}\n    hash_key: \"header:X-User\"\n"
        backends = [start_backend(n) for n in ("a", "b", "c")]
        port, usher = start_usher([p for p, _ in backends], pool_extra=pool_extra)
        picks, lock = [], threading.Lock()

        def slow():
            body = get(port, "/sleep?ms=1200", {"X-User": "hot"})
            with lock:
                picks.append(body)
        try:
            home = get(port, "/", {"X-User": "hot"})
            threads = [threading.Thread(target=slow) for _ in range(9)]
            for t in threads:
                t.start()
                time.sleep(0.05)
            for t in threads:
                t.join(timeout=10)
            return home, collections.Counter(picks)
        finally:
            usher.stop()
            for _, b in backends:
                b.stop()

    def test_hash_keeps_a_hot_key_on_one_backend(self):
        home, counts = self.spread_of_hot_key("hash")
        self.assertEqual(counts, {home: 9})

    def test_hash_bounded_moves_the_overflow(self):
        home, counts = self.spread_of_hot_key("hash-bounded")
        print(f"\nhot key, bounded: home {home}, {dict(counts)}")
        self.assertEqual(sum(counts.values()), 9)
        # ceil(1.25 x 9 / 3) = 4 at most on any backend, the home one included.
        self.assertLessEqual(max(counts.values()), 4)
        self.assertEqual(counts[home], max(counts.values()))


if __name__ == "__main__":
    unittest.main()
