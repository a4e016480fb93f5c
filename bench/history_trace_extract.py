# Extracts the numeric columns the history bench replays from recorded /api/system/metrics
# elements (one JSON array per line) into a compact CSV. Values are written as JSON printed
# them (shortest round-trip text), so they parse back to the same f64.
import json, sys
rows = [json.loads(l)[0] for l in open(sys.argv[1])][: int(sys.argv[3])]
def iface(r, name):
    return next(i for i in r['interfaces'] if i['name'] == name)
def disk(r, name):
    return next(d for d in r['disks'] if d['device'] == name)
cols = {
    'ms': lambda r: r['timestamp'] - rows[0]['timestamp'],
    'core0': lambda r: r['cpu']['cores'][0]['usage'],
    'core1': lambda r: r['cpu']['cores'][1]['usage'],
    'freq0': lambda r: r['cpu']['cores'][0]['frequency'],
    'freq1': lambda r: r['cpu']['cores'][1]['frequency'],
    'load1': lambda r: r['cpu']['loadAverage'][0],
    'load5': lambda r: r['cpu']['loadAverage'][1],
    'load15': lambda r: r['cpu']['loadAverage'][2],
    'processes': lambda r: r['cpu']['processes'],
    'threads': lambda r: r['cpu']['threads'],
    'mem_used': lambda r: r['memory']['used'],
    'mem_available': lambda r: r['memory']['available'],
    'mem_cached': lambda r: r['memory']['cached'],
    'disk_read': lambda r: disk(r, 'vda')['ioRead'],
    'disk_write': lambda r: disk(r, 'vda')['ioWrite'],
    'disk_reads': lambda r: disk(r, 'vda')['readsPerSec'],
    'disk_writes': lambda r: disk(r, 'vda')['writesPerSec'],
    'disk_util': lambda r: disk(r, 'vda')['utilization'],
    'lo_in': lambda r: iface(r, 'lo')['bytesIn'],
    'lo_pin': lambda r: iface(r, 'lo')['packetsIn'],
    'eth_in': lambda r: iface(r, 'eth0')['bytesIn'],
    'eth_out': lambda r: iface(r, 'eth0')['bytesOut'],
    'fs_used': lambda r: r['filesystems'][0]['used'],
    'fs_avail': lambda r: r['filesystems'][0]['avail'],
}
for res in ['cpu', 'memory', 'io']:
    for line in ['some', 'full']:
        for k in ['avg10', 'avg60', 'avg300', 'totalSeconds']:
            cols[f'psi_{res}_{line}_{k}'] = (lambda res, line, k: lambda r: (r['pressure'][res][line] or {}).get(k, 0.0))(res, line, k)
for i, c in enumerate(rows[0]['collectors']):
    cols[f'dur_{c["name"]}'] = (lambda i: lambda r: r['collectors'][i]['durationSeconds'])(i)
out = open(sys.argv[2], 'w')
out.write('# history bench trace: recorded from /api/system/metrics at 1 s on a 2-vCPU build VM (bench/history_trace_extract.py)\n')
out.write(','.join(cols) + '\n')
for r in rows:
    out.write(','.join(json.dumps(f(r)) for f in cols.values()) + '\n')
