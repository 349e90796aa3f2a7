#!/usr/bin/perl
# id_vocab.pl — a vocabulary under which text and token ids of a model
# without its tokenizer (stories260K's 512 ids) map onto each other, so
# llama.cpp can load quept's GGUF files and its text tools (llama-imatrix)
# see the very token ids quept calibrates on.
#
#   perl id_vocab.pl tokenizer N OUT   llama2.c tokenizer.bin of N tokens:
#       <unk> <s> </s>, the 256 byte tokens <0xHH>, and for id >= 259 the
#       single character U+4E00 + id (no piece spans two characters, so
#       llama.cpp's SentencePiece tokenizer never merges: one character, one id)
#   perl id_vocab.pl text QTOK OUT     the ids of a QTOK file as that text:
#       id >= 259 its character, a byte token of ASCII other than NUL and
#       space that byte (not a piece: byte fallback gives the id back), others
#       (BOS, EOS, unk, space, bytes >= 0x80 that are no character alone)
#       dropped — llama.cpp adds one space before the text,
#       3 byte tokens. Prints how many ids were dropped.
use strict;
use warnings;
binmode STDOUT;
my ($cmd, $arg, $out) = @ARGV;
die "usage: id_vocab.pl tokenizer N OUT | text QTOK OUT\n" unless defined $out;
open(my $fh, '>:raw', $out) or die "$out: $!\n";
if ($cmd eq 'tokenizer') {
    my @t = ('<unk>', '<s>', '</s>', map { sprintf('<0x%02X>', $_) } 0 .. 255);
    for my $id (scalar(@t) .. $arg - 1) {
        my $c = chr(0x4E00 + $id);
        utf8::encode($c);
        push @t, $c;
    }
    print $fh pack('l<', 16);
    print $fh pack('f<l<', 0, length $_), $_ for @t;
} elsif ($cmd eq 'text') {
    open(my $in, '<:raw', $arg) or die "$arg: $!\n";
    local $/;
    my $buf = <$in>;
    die "$arg: not a QTOK v1 file\n" unless length($buf) >= 24 && substr($buf, 0, 4) eq 'QTOK';
    my ($n, $T) = unpack('V V', substr($buf, 8, 8));
    die "$arg: size does not match $n x $T\n" unless length($buf) == 24 + 4 * $n * $T;
    my ($kept, $dropped) = (0, 0);
    for my $id (unpack('V*', substr($buf, 24))) {
        my $c;
        if ($id >= 259) { $c = chr(0x4E00 + $id); utf8::encode($c); }
        elsif ($id >= 4 && $id - 3 <= 0x7F && $id - 3 != 0x20) { $c = chr($id - 3); }
        else { $dropped++; next; }
        print $fh $c;
        $kept++;
    }
    print "$kept ids as text, $dropped dropped\n";
} else {
    die "id_vocab.pl: unknown command '$cmd'\n";
}
close($fh) or die "$out: $!\n";
