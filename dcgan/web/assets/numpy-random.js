// The latents of `dcgan sample --seed S`, drawn in the browser: numpy's
// default_rng(S).standard_normal, bit for bit. numpy seeds PCG64 (the XSL-RR output of a
// 128-bit LCG) through a SeedSequence hash, then draws normals with a 256-layer ziggurat.
// BigInt carries the 128-bit state; every other value fits a double exactly.
"use strict";

const NumpyRandom = (() => {
  const MASK32 = 0xffffffffn;
  const MASK64 = (1n << 64n) - 1n;
  const MASK128 = (1n << 128n) - 1n;
  const PCG_MULTIPLIER = 0x2360ed051fc65da44385df649fccf645n; // PCG_DEFAULT_MULTIPLIER_128
  const ZIGGURAT_R = 3.6541528853610088;
  const ZIGGURAT_INV_R = 0.27366123732975828;
  const LAYER_AREA = 0.0049286732339746549; // r f(r) + the tail beyond r: each layer's area
  const TWO_52 = 4503599627370496;

  // SeedSequence: 32-bit hashes of the seed's words into a pool of four, then out again.
  const mul32 = (a, b) => Math.imul(a, b) >>> 0;
  const xorshift16 = (v) => (v ^ (v >>> 16)) >>> 0;

  function seedWords(seed) {
    let value = BigInt(seed);
    if (value < 0n) throw new RangeError("a seed is a whole number of 0 or more");
    const words = [];
    do {
      words.push(Number(value & MASK32));
      value >>= 32n;
    } while (value > 0n);
    return words;
  }

  function seedPool(seed) {
    const entropy = seedWords(seed);
    let hashConst = 0x43b0d7e5;
    const hashmix = (value) => {
      value = (value ^ hashConst) >>> 0;
      hashConst = mul32(hashConst, 0x931e8875);
      return xorshift16(mul32(value, hashConst));
    };
    const mix = (x, y) => xorshift16((mul32(0xca01f9dd, x) - mul32(0x4973f715, y)) >>> 0);
    const pool = [0, 1, 2, 3].map((i) => hashmix(i < entropy.length ? entropy[i] : 0));
    for (let src = 0; src < 4; src++) {
      for (let dst = 0; dst < 4; dst++) {
        if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
      }
    }
    for (let src = 4; src < entropy.length; src++) {
      for (let dst = 0; dst < 4; dst++) pool[dst] = mix(pool[dst], hashmix(entropy[src]));
    }
    return pool;
  }

  // generate_state(4, uint64): eight 32-bit words, paired little-endian.
  function seedState(seed) {
    const pool = seedPool(seed);
    let hashConst = 0x8b51f9dd;
    const words = [];
    for (let i = 0; i < 8; i++) {
      let value = (pool[i % 4] ^ hashConst) >>> 0;
      hashConst = mul32(hashConst, 0x58f38ded);
      words.push(xorshift16(mul32(value, hashConst)));
    }
    const u64 = (i) => (BigInt(words[2 * i + 1]) << 32n) | BigInt(words[2 * i]);
    return [u64(0), u64(1), u64(2), u64(3)];
  }

  class PCG64 {
    constructor(seed) {
      const [s0, s1, i0, i1] = seedState(seed);
      this.inc = (((i0 << 64n) | i1) << 1n | 1n) & MASK128;
      this.state = 0n;
      this.step();
      this.state = (this.state + ((s0 << 64n) | s1)) & MASK128;
      this.step();
    }

    step() {
      this.state = (this.state * PCG_MULTIPLIER + this.inc) & MASK128;
    }

    next64() {
      this.step();
      const xored = ((this.state >> 64n) ^ this.state) & MASK64;
      const rot = this.state >> 122n;
      return ((xored >> rot) | (xored << ((64n - rot) & 63n))) & MASK64;
    }

    nextDouble() {
      return Number(this.next64() >> 11n) / 9007199254740992;
    }
  }

  // The ziggurat's layers (Marsaglia and Tsang, 2000), 52-bit, as numpy builds them.
  const ki = new Array(256);
  const wi = new Array(256);
  const fi = new Array(256);
  (() => {
    let dn = ZIGGURAT_R;
    let tn = dn;
    const q = LAYER_AREA / Math.exp(-0.5 * dn * dn);
    ki[0] = Math.floor((dn / q) * TWO_52);
    ki[1] = 0;
    wi[0] = q / TWO_52;
    wi[255] = dn / TWO_52;
    fi[0] = 1.0;
    fi[255] = Math.exp(-0.5 * dn * dn);
    for (let i = 254; i >= 1; i--) {
      dn = Math.sqrt(-2.0 * Math.log(LAYER_AREA / dn + Math.exp(-0.5 * dn * dn)));
      ki[i + 1] = Math.floor((dn / tn) * TWO_52);
      tn = dn;
      fi[i] = Math.exp(-0.5 * dn * dn);
      wi[i] = dn / TWO_52;
    }
  })();

  function standardNormal(rng) {
    for (;;) {
      let r = rng.next64();
      const idx = Number(r & 0xffn);
      r >>= 8n;
      const negative = (r & 1n) === 1n;
      const rabs = Number((r >> 1n) & 0xfffffffffffffn);
      let x = rabs * wi[idx];
      if (negative) x = -x;
      if (rabs < ki[idx]) return x;
      if (idx === 0) {
        for (;;) {
          const xx = -ZIGGURAT_INV_R * Math.log1p(-rng.nextDouble());
          const yy = -Math.log1p(-rng.nextDouble());
          if (yy + yy > xx * xx) {
            return Math.floor(rabs / 256) % 2 === 1 ? -(ZIGGURAT_R + xx) : ZIGGURAT_R + xx;
          }
        }
      } else if ((fi[idx - 1] - fi[idx]) * rng.nextDouble() + fi[idx] < Math.exp(-0.5 * x * x)) {
        return x;
      }
    }
  }

  // count latents of length dim, as np.random.default_rng(seed).standard_normal((count,
  // dim)).astype(np.float32): one Float32Array of count * dim values, row after row.
  function latents(seed, count, dim) {
    const rng = new PCG64(seed);
    const out = new Float32Array(count * dim);
    for (let i = 0; i < out.length; i++) out[i] = standardNormal(rng);
    return out;
  }

  // The spherical walk of `dcgan interpolate` (models/latents.py slerp), in doubles.
  function slerp(a, b, t) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let i = 0; i < a.length; i++) {
      dot += a[i] * b[i];
      na += a[i] * a[i];
      nb += b[i] * b[i];
    }
    const cos = dot / Math.max(Math.sqrt(na) * Math.sqrt(nb), 1e-12);
    const omega = Math.acos(Math.min(1, Math.max(-1, cos)));
    const out = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) {
      out[i] =
        omega < 1e-6
          ? (1 - t) * a[i] + t * b[i]
          : (Math.sin((1 - t) * omega) * a[i] + Math.sin(t * omega) * b[i]) / Math.sin(omega);
    }
    return out;
  }

  return { PCG64, seedState, latents, slerp, tables: { ki, wi, fi } };
})();

if (typeof module !== "undefined") module.exports = NumpyRandom;
