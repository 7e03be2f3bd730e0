module usernsguard/gojson

go 1.19
