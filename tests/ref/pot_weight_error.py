#!/usr/bin/python3
"""pot_weight_error.py — data-free weight error of integer RTN, power-of-two
(PoT, no zero code) and a PoT variant with a zero code, on the seven linears
of every block of a llama2.c legacy checkpoint (default
../shared/models/stories260K.bin), groups of 128 capped at the row length,
bits 2..6. Prints sum((W - Q(W))^2) / sum(W^2) per width.

  int   asymmetric min/max grid, round to nearest (quept's RTN)
  pot   levels ±s·2^E, E = 0..2^(b-1)-1 (pot.h), s by the data-free search
        (multipliers 0.01..2.00 of max|w| / 2^(Emax-1), nearest level)
  pot0  the same codes with E = 0 reserved for zero: levels 0, ±s·2^(E-1),
        E = 1..Emax, same search (start max|w| / 2^(Emax-2))

This is the measurement behind docs/results.md's notes that a zero code does not
help on this model and that PoT gains nothing beyond 4 bits. numpy, float64.
    /usr/bin/python3 tests/ref/pot_weight_error.py [checkpoint]
"""
import struct
import sys

import numpy as np
f=open(sys.argv[1] if len(sys.argv) > 1 else '../shared/models/stories260K.bin','rb').read()
dim,hid,nl,nh,nkv,vocab,seq=struct.unpack('<7i',f[:28])
vocab=abs(vocab); hd=dim//nh; kvd=nkv*hd
a=np.frombuffer(f[28:],dtype=np.float32); o=0
def take(n):
    global o; r=a[o:o+n]; o+=n; return r
take(vocab*dim); take(nl*dim)
ws=[]
for shp in [(dim,dim),(kvd,dim),(kvd,dim),(dim,dim)]:
    ws.append(take(nl*shp[0]*shp[1]).reshape(nl*shp[0],shp[1]))
take(nl*dim)
ws.append(take(nl*hid*dim).reshape(-1,dim)); ws.append(take(nl*dim*hid).reshape(-1,hid)); ws.append(take(nl*hid*dim).reshape(-1,dim))
def groups(W,g):
    out=[]
    for k in range(0,W.shape[1],g): out.append(W[:,k:k+g])
    return out
def pot(x,s,emax,zero):
    u=np.abs(x)/s
    if zero:
        # levels 0, 1, 2, ..., 2^(emax-1)
        lv=np.concatenate([[0.0],2.0**np.arange(emax)])
    else:
        lv=2.0**np.arange(emax+1)
    idx=np.abs(u[...,None]-lv).argmin(-1)
    return np.sign(x)*lv[idx]*s
def search(x,bits,zero):
    emax=2**(bits-1)-1
    m=np.abs(x).max(1,keepdims=True)
    top = emax-1 if zero else emax
    start=m/2.0**max(top-1,0)
    best=None;be=None
    for k in range(1,201):
        s=start*k/100
        e=((x-pot(x,s,emax,zero))**2).sum(1,keepdims=True)
        if best is None: best=e.copy(); be=s.copy()
        else:
            msk=e<best; best=np.where(msk,e,best); be=np.where(msk,s,be)
    return best.sum()
def rtn(x,bits):
    mx=x.max(1,keepdims=True); mn=x.min(1,keepdims=True); q=2**bits-1
    s=np.maximum((mx-mn)/q,1e-5); z=-np.round(mn/s)
    qq=np.clip(np.round(x/s)+z,0,q); return (((qq-z)*s-x)**2).sum()
tot=sum((W**2).sum() for W in ws)
for bits in [2,3,4,5,6]:
    r=[0,0,0]
    for W in ws:
        for G in groups(W,min(128,W.shape[1])):
            G=G.astype(np.float64)
            r[0]+=rtn(G,bits); r[1]+=search(G,bits,False)
            if bits>=2: r[2]+=search(G,bits,True)
    print(bits, "rel MSE int %.4g pot %.4g pot0 %.4g"%(r[0]/tot,r[1]/tot,r[2]/tot))
