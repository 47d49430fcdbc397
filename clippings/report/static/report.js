(function(){
  var groups=[].slice.call(document.querySelectorAll('section.group'));
  var box=document.getElementById('search'), count=document.getElementById('count');
  function apply(q){
    q=(q||'').trim().toLowerCase(); var shown=0;
    groups.forEach(function(g){var hit=!q||g.getAttribute('data-text').indexOf(q)>=0;
      g.hidden=!hit; if(hit){shown++;}});
    count.textContent=shown+' of '+groups.length+' groups shown';
    document.body.setAttribute('data-query',q); document.body.setAttribute('data-visible-groups',shown);
  }
  function fromUrl(){
    var m=/[#?&]q=([^&]*)/.exec(location.hash)||/[?&]q=([^&]*)/.exec(location.search);
    return m?decodeURIComponent(m[1].replace(/\+/g,' ')):'';
  }
  box.addEventListener('input',function(){
    apply(box.value); history.replaceState(null,'',box.value?'#q='+encodeURIComponent(box.value):'#');
  });
  box.value=fromUrl(); apply(box.value);
  window.addEventListener('load',function(){
    var imgs=[].slice.call(document.querySelectorAll('figure.clip img')), ok=0;
    imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0){ok++;}});
    document.body.setAttribute('data-images-loaded',ok);
    document.body.setAttribute('data-images-broken',imgs.length-ok);
  });
})();
