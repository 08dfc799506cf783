module github.com/lexhq/gstjobs/cmd/benchtable

go 1.26.0
