#!/usr/bin/perl
# Writes a small MaxMind DB in the layout of a GeoLite2/DB-IP country database, for the tests.
#
#   make_mmdb.pl OUT.mmdb CIDR=COUNTRY:CONTINENT ...
#   make_mmdb.pl db.mmdb 192.0.2.0/24=DE:EU 198.51.100.0/24=US:NA 2001:db8::/32=FR:EU
#
# Each network's record is { country => { iso_code }, continent => { code } }. The tree is IPv6
# (record size 24) with IPv4 inserted below ::/96 and ::ffff:0:0/96 aliased to it, as MaxMind
# builds its own databases, so IPv4 clients and IPv4-mapped IPv6 clients find the same records.
use strict;
use warnings;

use MaxMind::DB::Writer::Tree;

die "usage: $0 OUT.mmdb CIDR=COUNTRY:CONTINENT ...\n" unless @ARGV >= 1;
my ($out, @entries) = @ARGV;

my %types = (
    country   => 'map',
    continent => 'map',
    iso_code  => 'utf8_string',
    code      => 'utf8_string',
);

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version            => 6,
    record_size           => 24,
    database_type         => 'GeoLite2-Country',
    languages             => ['en'],
    description           => { en => 'usher test country database' },
    alias_ipv6_to_ipv4    => 1,
    remove_reserved_networks => 0,
    map_key_type_callback => sub { $types{ $_[0] } },
);

for my $entry (@entries) {
    my ($network, $place) = split /=/, $entry, 2;
    die "bad entry '$entry' (want CIDR=COUNTRY:CONTINENT)\n" unless defined $place;
    my ($country, $continent) = split /:/, $place, 2;
    my %record;
    $record{country} = { iso_code => $country } if length($country // '');
    $record{continent} = { code => $continent } if length($continent // '');
    $tree->insert_network($network, \%record);
}

# Written beside the target and renamed into place: a reader never sees half a file.
my $partial = "$out.partial.$$";
open my $fh, '>:raw', $partial or die "cannot write $partial: $!\n";
$tree->write_tree($fh);
close $fh or die "cannot write $partial: $!\n";
rename $partial, $out or die "cannot rename $partial to $out: $!\n";
