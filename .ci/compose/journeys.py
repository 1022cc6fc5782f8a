"""The shopper's journeys through a running `docker compose` stack, on its published port on
127.0.0.1 only, as .ci/compose.sh starts it. Each journey asserts what the README promises and
prints its figures; any failure exits non-zero with the reason.

  journeys.py store STORE     sign up, fill a cart over the replicas, kill the replica that
                              served the login, keep login and cart, check out
  journeys.py scale           scale to 5 and back to 2 while a shopper browses: no request fails
  journeys.py cluster         kill the Redis master holding the shopper's session: count the 503
                              window, nothing acknowledged lost, start it again, writes work
  journeys.py rolling         replace every replica one at a time (deploy/rolling-update.sh)
                              while shoppers add, change, remove and check out: none signed
                              out, no cart line lost or changed, no answer outside 2xx/3xx
  journeys.py restart STORE   restart the session store as an upgrade does: the sessions kept,
                              and the changes acknowledged in the last second before it
  journeys.py monitoring      Prometheus reports every replica's metrics target up

Every request is bounded (a timeout each, a fixed number of them) and the script stops by itself.
"""
import http.cookiejar
import json
import random
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

BASE = "http://127.0.0.1:8080"
PASSWORD = "compose-journey-1"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
CART_LINE = re.compile(
    r'id="qty-(\d+)" name="quantity" type="number"(?: inputmode="numeric")? min="0" max="\d+" value="(\d+)"'
)
USER = re.compile(r'<span class="user">([^<]+)</span>')


def fail(text):
    sys.exit(f"compose journey FAILED: {text}")


def run(command):
    """Runs one of the README's commands, word for word, and fails on a non-zero exit."""
    print(f"$ {command}", flush=True)
    done = subprocess.run(command, shell=True, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"`{command}` exited {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return done.stdout


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def served_by(self):
        return self.headers.get("X-Served-By", "")


class Shopper:
    """A browser: its own cookies, no redirects followed, a 10 s timeout per request."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect
        )
        self.email = f"compose-{secrets.token_hex(6)}@example.com"
        # The form token: a guest's until the sign-in, then the session's, which stays the same
        # while the session lives (so a write can be tried while reads fail, in a failover).
        self.token = None

    def request(self, method, path, form=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(BASE + path, data=data, method=method)
        try:
            with self.opener.open(request, timeout=10) as response:
                return Reply(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.headers, error.read().decode())

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, form):
        if self.token is None:
            found = CSRF.search(self.get("/login").body)
            if not found:
                fail(f"no form token on /login for {path}")
            self.token = found.group(1)
        return self.request("POST", path, {**form, "csrf_token": self.token})

    def register(self):
        reply = self.post("/register", {"email": self.email, "password": PASSWORD})
        if reply.status != 303:
            fail(f"registration answered {reply.status}")
        self.token = None
        return reply

    def add(self, product, quantity=1):
        return self.post("/cart/items", {"product_id": str(product), "quantity": str(quantity)})

    def cart(self):
        page = self.get("/cart")
        if page.status != 200:
            fail(f"the cart page answered {page.status}")
        return {int(p): int(q) for p, q in CART_LINE.findall(page.body)}, page

    def signed_in_as(self):
        found = USER.search(self.get("/").body)
        return found.group(1) if found else None


def container_of(instance):
    """The container a page's footer names: INSTANCE_NAME is its host name (the container's
    short id) and the process id."""
    return instance.rsplit("-", 1)[0]


def shop_containers():
    return run("docker compose ps -q shop").split()


def journey_store(store):
    shopper = Shopper()
    login = shopper.register()
    login_replica = login.served_by
    seen = {login_replica}
    for product in (1, 2, 3, 1, 2, 3):
        reply = shopper.add(product)
        if reply.status != 303:
            fail(f"{store}: adding product {product} answered {reply.status}")
        seen.add(reply.served_by)
    cart, _ = shopper.cart()
    if cart != {1: 2, 2: 2, 3: 2}:
        fail(f"{store}: the cart holds {cart}, not two of each of three products")
    if len(seen) < 2:
        fail(f"{store}: one replica served every request ({seen}): is nginx round robin?")
    victim = container_of(login_replica)
    run(f"docker kill {victim}")
    survivors = set()
    for _ in range(6):
        if shopper.signed_in_as() != shopper.email:
            fail(f"{store}: the shopper was logged out when the replica that served the login died")
        cart, page = shopper.cart()
        if cart != {1: 2, 2: 2, 3: 2}:
            fail(f"{store}: the cart lost items when a replica died: {cart}")
        survivors.add(page.served_by)
    if login_replica in survivors:
        fail(f"{store}: the killed replica {login_replica} still served a page")
    order = shopper.post("/checkout", {})
    location = order.headers.get("Location", "")
    if order.status != 303 or not location.startswith("/orders/"):
        fail(f"{store}: checkout answered {order.status} {location}")
    if shopper.cart()[0]:
        fail(f"{store}: the cart is not empty after the order")
    print(
        f"compose {store}: replicas seen {len(seen | survivors)}; killed {victim} (served the login); "
        f"kept the login and 6 items; checked out to {location}"
    )


def journey_scale():
    shopper = Shopper()
    shopper.register()
    stop = threading.Event()
    results = []

    def browse():
        product = 0
        while not stop.is_set() and len(results) < 5000:
            product = product % 8 + 1
            for path in ("/", f"/products/{product}", "/cart"):
                started = time.monotonic()
                try:
                    reply = shopper.get(path)
                    results.append((reply.status, reply.served_by, time.monotonic() - started))
                except OSError as error:
                    results.append((str(error), "", time.monotonic() - started))
            time.sleep(0.05)

    browser = threading.Thread(target=browse)
    browser.start()
    try:
        time.sleep(1)
        run("docker compose up -d --scale shop=5 --wait")
        five = len(shop_containers())
        time.sleep(3)
        during_five = len(results)
        run("docker compose up -d --scale shop=2 --wait")
        two = len(shop_containers())
        time.sleep(3)
    finally:
        stop.set()
        browser.join(timeout=30)
    failed = [r for r in results if r[0] != 200]
    replicas = {served for _, served, _ in results[:during_five] if served}
    slowest = max(seconds for _, _, seconds in results)
    if five != 5 or two != 2:
        fail(f"scaling ran {five} and then {two} replicas, not 5 and 2")
    if failed:
        fail(f"{len(failed)} of {len(results)} page views failed while scaling: {failed[:5]}")
    if len(replicas) < 5:
        fail(f"only {len(replicas)} distinct replicas served the shopper at 5")
    if shopper.signed_in_as() != shopper.email:
        fail("the shopper was logged out by scaling")
    print(
        f"compose scale: {len(results)} page views while scaling 3 -> 5 -> 2, none failed; "
        f"{len(replicas)} distinct replicas served one shopper; slowest {slowest * 1000:.0f} ms"
    )


def journey_rolling(store):
    """Shoppers keep shopping while every replica is replaced; each shopper's acknowledged
    actions are a model of their cart, checked against the cart page after every action."""
    shoppers = [Shopper() for _ in range(8)]
    for shopper in shoppers:
        shopper.register()
    stop = threading.Event()
    counts = {"requests": 0, "outside 2xx/3xx": 0, "signed out": 0, "carts wrong": 0,
              "adds": 0, "changes": 0, "removals": 0, "checkouts": 0}
    problems = []
    lock = threading.Lock()

    def count(name, problem=None):
        with lock:
            counts[name] += 1
            if problem and len(problems) < 10:
                problems.append(problem)

    def checked(shopper, reply, what):
        count("requests")
        if not 200 <= reply.status < 400:
            count("outside 2xx/3xx", f"{what} answered {reply.status} from {reply.served_by}")
            return False
        return True

    # Products with stock for every order below on a fresh stack (at least 35 each after the
    # store journey's order): at most two of each in a cart, two checkouts a shopper (32 at
    # most), so no order is refused for stock (an honest refusal, not a loss).
    products = [1, 2, 4, 9, 11]

    def shop(number, shopper):
        rng = random.Random(number)
        model = {}
        checkouts = 0
        # Until the replacement is over (bounded: 3 minutes, 3,000 actions).
        deadline = time.monotonic() + 180
        for _ in range(3000):
            if stop.is_set() or time.monotonic() > deadline:
                break
            action = rng.choice(["add", "add", "add", "change", "remove", "checkout"])
            product = rng.choice(products)
            if action == "add" and model.get(product, 0) >= 2:
                action = "change"
            if action == "checkout" and checkouts >= 2:
                action = "remove"
            if action == "add" or not model:
                if model.get(product, 0) >= 2:
                    continue
                if checked(shopper, shopper.add(product), f"add {product}"):
                    model[product] = model.get(product, 0) + 1
                    count("adds")
            elif action == "change":
                product, quantity = rng.choice(sorted(model)), rng.randint(1, 2)
                reply = shopper.post(f"/cart/items/{product}", {"quantity": str(quantity)})
                if checked(shopper, reply, f"change {product}"):
                    model[product] = quantity
                    count("changes")
            elif action == "remove":
                product = rng.choice(sorted(model))
                reply = shopper.post(f"/cart/items/{product}/remove", {})
                if checked(shopper, reply, f"remove {product}"):
                    del model[product]
                    count("removals")
            else:
                checkouts += 1
                reply = shopper.post("/checkout", {})
                # Placed: to the order. Refused (stock): back to the cart, which stays.
                if checked(shopper, reply, "checkout") and reply.headers.get(
                    "Location", ""
                ).startswith("/orders/"):
                    model = {}
                    count("checkouts")
            page = shopper.get("/cart")
            if not checked(shopper, page, "the cart page"):
                continue
            if USER.search(page.body) is None or USER.search(page.body).group(1) != shopper.email:
                count("signed out", f"shopper {number} signed out, served by {page.served_by}")
            cart = {int(p): int(q) for p, q in CART_LINE.findall(page.body)}
            if cart != model:
                count("carts wrong", f"shopper {number}: cart {cart}, acknowledged {model}")
                model = cart
            time.sleep(0.02)

    threads = [threading.Thread(target=shop, args=(n, s)) for n, s in enumerate(shoppers)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        before = set(shop_containers())
        output = run("docker compose build shop && bash deploy/rolling-update.sh")
        after = set(shop_containers())
        time.sleep(2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    if before & after or len(after) != len(before):
        fail(f"{store}: the replicas were not all replaced: {len(before & after)} of {len(before)} remain")
    # Each old replica refused new connections before it stopped: without that, a connection
    # queued at its listener's close is reset with its request sent, and a POST answers 502.
    refused = output.count(" refuses new connections")
    if refused != len(before):
        fail(f"{store}: {refused} of {len(before)} old replicas refused new connections before "
             f"they stopped:\n{output}")
    bad = counts["outside 2xx/3xx"] + counts["signed out"] + counts["carts wrong"]
    summary = ", ".join(f"{n} {name}" for name, n in counts.items())
    if bad or counts["adds"] < len(shoppers):
        # The stopped replicas' logs are gone with them; the update printed their warnings.
        print(output, file=sys.stderr)
        fail(f"{store} rolling update: {summary}; {problems}")
    last = output.strip().splitlines()[-1]
    print(f"compose {store} rolling update ({last.removeprefix('rolling update: ')}): {summary}")


# What a clean restart of each store (SIGTERM, then start, as an upgrade does) keeps with the
# deployment files' settings; README, "Choosing the session store", quotes these.
KEPT_BY_A_RESTART = {"redis": True, "postgres": True, "memcached": False}


def journey_restart(store):
    shoppers = [Shopper() for _ in range(5)]
    for shopper in shoppers:
        shopper.register()
        if shopper.add(1).status != 303:
            fail(f"{store} restart: an add answered otherwise than 303")
    # The last second before the restart: one shopper adds and removes products in turn (no
    # stock runs out), and every acknowledged change is one the store must have.
    last, model, started = shoppers[0], {1: 1}, time.monotonic()
    products, acknowledged = [2, 4, 9, 11], 0
    while time.monotonic() - started < 1:
        product = products[acknowledged % len(products)]
        if product in model:
            if last.post(f"/cart/items/{product}/remove", {}).status == 303:
                del model[product]
                acknowledged += 1
        elif last.add(product).status == 303:
            model[product] = 1
            acknowledged += 1
    run(f"docker compose restart {store}")
    deadline = time.monotonic() + 60
    while last.get("/").status != 200:
        if time.monotonic() > deadline:
            fail(f"{store} restart: the shop did not answer within 60 s of the store's restart")
        time.sleep(0.5)
    def signed_in(shopper):
        # Every replica reconnects to the store on its own: a page is read once it answers 200.
        for _ in range(60):
            page = shopper.get("/")
            if page.status == 200:
                found = USER.search(page.body)
                return found is not None and found.group(1) == shopper.email
            time.sleep(0.5)
        fail(f"{store} restart: a replica did not answer 200 within 30 s of the store's restart")

    kept = sum(1 for shopper in shoppers if signed_in(shopper))
    cart, _ = last.cart()
    # Changes are kept up to the last one the cart reflects: compare the cart with the model.
    kept_changes = acknowledged if cart == model else 0 if not cart else "some"
    figure = (
        f"kept {kept} of {len(shoppers)} sessions and {kept_changes} of {acknowledged} changes "
        f"acknowledged in the last second before it"
    )
    if KEPT_BY_A_RESTART[store] and (kept != len(shoppers) or cart != model):
        fail(f"{store}: a restart of the store {figure}; the cart is {cart}, acknowledged {model}")
    if not KEPT_BY_A_RESTART[store] and kept != 0:
        fail(f"{store}: a restart of the store {figure}, yet it keeps nothing on disk")
    print(f"compose {store}: a restart of the store {figure}")


def redis_cli(node, *args):
    return run(f"docker compose exec -T {node} redis-cli " + " ".join(args)).strip()


def wait_for_replicas():
    """Waits (60 s at most) until each of the three masters has its replica online: until then
    a write that waits for a replica is refused, as it should be."""
    deadline = time.monotonic() + 60
    while True:
        online = 0
        for node in range(1, 7):
            info = redis_cli(f"redis-node-{node}", "info", "replication")
            if "role:master" in info and re.search(r"slave0:.*state=online", info):
                online += 1
        if online == 3:
            return time.monotonic() - (deadline - 60)
        if time.monotonic() > deadline:
            fail(f"cluster: {online} of 3 masters have a replica online after 60 s")
        time.sleep(1)


def journey_cluster():
    synced = wait_for_replicas()
    shopper = Shopper()
    shopper.register()
    if shopper.add(1).status != 303:
        fail("cluster: the first add failed")
    # The shopper's session is the only session key (64 hex digits after the prefix).
    holder = None
    for node in range(1, 7):
        name = f"redis-node-{node}"
        if "role:master" not in redis_cli(name, "info", "replication"):
            continue
        keys = redis_cli(name, "--scan", "--pattern", "'shop:session:*'").split()
        if any(re.fullmatch(r"shop:session:[0-9a-f]{64}", key) for key in keys):
            holder = name
    if not holder:
        fail("cluster: no master holds the shopper's session")
    acknowledged, unknown, answers = 1, 0, []
    started = time.monotonic()
    run(f"docker compose kill {holder}")
    first_503 = last_503 = None
    restarted_at = None
    for attempt in range(400):
        now = time.monotonic() - started
        if restarted_at is None and now > 8:
            run(f"docker compose start {holder}")
            restarted_at = time.monotonic() - started
        reply = shopper.add(1)
        answers.append(reply.status)
        if reply.status == 303:
            acknowledged += 1
            if restarted_at is not None and answers[-5:] == [303] * 5:
                break
        elif reply.status == 503:
            first_503 = first_503 if first_503 is not None else now
            last_503 = now
            if "could not learn whether it was saved" in reply.body:
                unknown += 1
        else:
            fail(f"cluster: an add answered {reply.status}")
        time.sleep(0.1)
    else:
        fail(f"cluster: writes did not work again after `docker compose start {holder}`")
    quantity = shopper.cart()[0].get(1, 0)
    if quantity < acknowledged:
        fail(f"cluster: {acknowledged} adds were acknowledged but the cart holds {quantity}")
    if quantity > acknowledged + unknown:
        fail(f"cluster: the cart holds {quantity}, more than {acknowledged} acknowledged + {unknown} unknown")
    if shopper.signed_in_as() != shopper.email:
        fail("cluster: the shopper was logged out by the failover")
    window = f"{last_503 - first_503 + 0.1:.1f} s" if first_503 is not None else "none"
    print(
        f"compose cluster: replicas in sync after {synced:.0f} s; killed {holder} (held the session); 503 window {window} "
        f"({answers.count(503)} of {len(answers)} adds), restarted at {restarted_at:.1f} s; "
        f"items kept {quantity} of {acknowledged} acknowledged ({unknown} unknown outcomes)"
    )


def journey_monitoring():
    replicas = len(shop_containers())
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen("http://127.0.0.1:9090/api/v1/targets", timeout=10) as r:
            targets = json.load(r)["data"]["activeTargets"]
        shop = [t for t in targets if t["labels"].get("job") == "shop"]
        up = [t for t in shop if t["health"] == "up"]
        if len(shop) == replicas and len(up) == replicas:
            break
        if time.monotonic() > deadline:
            fail(f"Prometheus sees {len(up)} of {len(shop)} shop targets up, {replicas} replicas run")
        time.sleep(2)
    print(f"compose monitoring: Prometheus reports all {replicas} replicas' metrics targets up")


if __name__ == "__main__":
    journey, *rest = sys.argv[1:] or ["?"]
    {
        "store": lambda: journey_store(*rest),
        "scale": journey_scale,
        "rolling": lambda: journey_rolling(*rest),
        "restart": lambda: journey_restart(*rest),
        "cluster": journey_cluster,
        "monitoring": journey_monitoring,
    }.get(journey, lambda: fail(f"no journey {journey}"))()
