"""A slow, plain SM2 reference written straight from GB/T 32918.2-2016 (GM/T 0003.2-2012).

Test-only: affine arithmetic with Python integers, no constant-time care. It exists so the
tests can check, independently of Tongsuo, that ``sm-v1`` signatures really are SM2 with
Z computed from the default user id ``1234567812345678`` (GM/T 0009-2012 §10).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

Point = tuple[int, int] | None  # None is the point at infinity O

DEFAULT_ID = b"1234567812345678"


def sm3(data: bytes) -> bytes:
    """Return SM3(data) (GB/T 32905-2016)."""
    return hashlib.new("sm3", data).digest()


@dataclass(frozen=True)
class Curve:
    """A short Weierstrass curve y^2 = x^3 + ax + b over F_p with base point G of order n."""

    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int

    @property
    def g(self) -> Point:
        """Return the base point G."""
        return (self.gx, self.gy)

    def on_curve(self, point: Point) -> bool:
        """Return True if ``point`` satisfies the curve equation (O counts as on the curve)."""
        if point is None:
            return True
        x, y = point
        return (y * y - (x * x * x + self.a * x + self.b)) % self.p == 0

    def add(self, p1: Point, p2: Point) -> Point:
        """Return p1 + p2 (GB/T 32918.1 §3.2.3.1, affine formulas)."""
        if p1 is None:
            return p2
        if p2 is None:
            return p1
        (x1, y1), (x2, y2) = p1, p2
        if x1 == x2 and (y1 + y2) % self.p == 0:
            return None
        if p1 == p2:
            lam = (3 * x1 * x1 + self.a) * pow(2 * y1, -1, self.p)
        else:
            lam = (y2 - y1) * pow(x2 - x1, -1, self.p)
        x3 = (lam * lam - x1 - x2) % self.p
        return (x3, (lam * (x1 - x3) - y1) % self.p)

    def mul(self, k: int, point: Point) -> Point:
        """Return [k]point by double-and-add."""
        result: Point = None
        while k:
            if k & 1:
                result = self.add(result, point)
            point = self.add(point, point)
            k >>= 1
        return result


def _b32(value: int) -> bytes:
    return value.to_bytes(32, "big")


def z_value(curve: Curve, user_id: bytes, public: Point) -> bytes:
    """Return Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA) (GB/T 32918.2 §5.5)."""
    assert public is not None
    entl = (len(user_id) * 8).to_bytes(2, "big")
    fields = (curve.a, curve.b, curve.gx, curve.gy, public[0], public[1])
    return sm3(entl + user_id + b"".join(_b32(v) for v in fields))


def digest_e(curve: Curve, user_id: bytes, public: Point, message: bytes) -> int:
    """Return e = SM3(Z ‖ M) as an integer (GB/T 32918.2 §6.1 A2, §7.1 B4)."""
    return int.from_bytes(sm3(z_value(curve, user_id, public) + message), "big")


def sign_with_k(curve: Curve, user_id: bytes, d: int, message: bytes, k: int) -> tuple[int, int]:
    """Sign with a given nonce ``k`` (GB/T 32918.2 §6.1 A1-A7), to reproduce published examples."""
    public = curve.mul(d, curve.g)
    e = digest_e(curve, user_id, public, message)
    kg = curve.mul(k, curve.g)
    assert kg is not None
    r = (e + kg[0]) % curve.n
    assert r != 0
    assert r + k != curve.n
    s = pow(1 + d, -1, curve.n) * (k - r * d) % curve.n
    assert s != 0
    return r, s


def verify(curve: Curve, user_id: bytes, public: Point, message: bytes, r: int, s: int) -> bool:
    """Verify (r, s) on ``message`` (GB/T 32918.2 §7.1 B1-B7)."""
    n = curve.n
    if not (1 <= r <= n - 1 and 1 <= s <= n - 1):  # B1, B2
        return False
    e = digest_e(curve, user_id, public, message)  # B3, B4
    t = (r + s) % n  # B5
    if t == 0:
        return False
    point = curve.add(curve.mul(s, curve.g), curve.mul(t, public))  # B6
    if point is None:
        return False
    return (e + point[0]) % n == r  # B7


# The recommended curve sm2p256v1 (GB/T 32918.5-2017 / GM/T 0003.5-2012 §2).
SM2P256V1 = Curve(
    p=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF,
    a=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC,
    b=0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93,
    gx=0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    gy=0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
    n=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123,
)

# The 256-bit prime-field test curve of the worked example in GB/T 32918.2-2016 Annex A
# (GM/T 0003.2-2012 Annex A; draft-shen-sm2-ecdsa-02 Appendix A).
ANNEX_A_FP256 = Curve(
    p=0x8542D69E4C044F18E8B92435BF6FF7DE457283915C45517D722EDB8B08F1DFC3,
    a=0x787968B4FA32C3FD2417842E73BBFEFF2F3C848B6831D7E0EC65228B3937E498,
    b=0x63E4C6D3B23B0C849CF84241484BFE48F61D59A5B16BA06E6E12D1DA27C5249A,
    gx=0x421DEBD61B62EAB6746434EBC3CC315E32220B3BADD50BDC4C4E6C147FEDD43D,
    gy=0x0680512BCBB42C07D47349D2153B70C4E5D7FDFCBFA36EA1A85841B9E46E09A2,
    n=0x8542D69E4C044F18E8B92435BF6FF7DD297720630485628D5AE74EE7C32E79B7,
)
