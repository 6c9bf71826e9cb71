# An allocation-heavy Python script: dicts, lists, strings, JSON, sorting.
# Run with PYTHONMALLOC=malloc so that every object comes from the C allocator.
import json
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
records = []
for i in range(n):
    records.append({
        "id": i,
        "name": "user%06d" % ((i * 7919) % n),
        "tags": ["t%d" % (i % 13), "g%d" % (i % 7)] * (1 + i % 3),
        "score": (i * 2654435761) % 1000003 / 7.0,
    })
index = {}
for r in records:
    index.setdefault(r["tags"][0], []).append(r["id"])
text = json.dumps(records)
back = json.loads(text)
assert back == records
back.sort(key=lambda r: (r["score"], r["name"]))
words = " ".join(r["name"] for r in back).split()
counts = {}
for w in words:
    counts[w[:6]] = counts.get(w[:6], 0) + 1
chunks = [text[i:i + 1000] for i in range(0, len(text), 1000)]
joined = "".join(reversed(chunks))
print(len(text), len(joined), len(words), len(counts), len(index))
print(back[0]["id"], back[-1]["id"], sorted(counts.items())[:3])
print(sum(len(v) for v in index.values()), ",".join(sorted(index))[:40])
