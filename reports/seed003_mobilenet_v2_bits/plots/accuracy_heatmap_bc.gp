# made by qlab; run `gnuplot accuracy_heatmap_bc.gp` here to redraw
DATA = "accuracy_heatmap_bc.dat"
set title "Test accuracy (%) with bias correction"
set xlabel "weight bits"
set ylabel "activation bits"
set terminal pngcairo size 900,540 noenhanced
set output "accuracy_heatmap_bc.png"
set xtics ("2" 0, "4" 1, "8" 2)
set ytics ("4" 0, "8" 1)
set xrange [-0.5:2.5]
set yrange [-0.5:1.5]
set palette defined (0 "#b2182b", 0.5 "#f7f7f7", 1 "#2166ac")
set cblabel "accuracy_bc"
plot DATA using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 noborder fc palette notitle, \
     DATA using 1:2:(sprintf("%.1f", $3)) with labels notitle
set terminal svg size 900,540 dynamic noenhanced background rgb 'white'
set output "accuracy_heatmap_bc.svg"
replot
